"""Public pages: the customer's card link (no API key; the token in the URL is the secret)."""

from __future__ import annotations

from flask import abort, render_template_string

from app.cards import pkpass_response
from app.domain.members import find_by_download_token
from app.pages import bp
from app.services import db_session


@bp.get("/cards/<token>.pkpass")
def public_pass(token: str):
    """`apple_pass_url`: opening it on an iPhone offers "Add to Apple Wallet"."""
    session = db_session()
    member = find_by_download_token(session, token) if len(token) >= 16 else None
    if member is None:
        abort(404)
    response = pkpass_response(session, member)
    session.commit()
    return response


@bp.get("/")
def home():
    """What `make run` opens on: where the API and its documentation are."""
    return render_template_string(HOME)


@bp.get("/healthz")
def health():
    return {"status": "ok"}


HOME = """<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Punchpass</title><link rel="stylesheet" href="{{ url_for('static', filename='home.css') }}">
<body>
<h1>Punchpass is running</h1>
<p>Loyalty cards that live in Apple Wallet and update themselves.</p>
<ul><li><a href="/docs">API documentation</a> (<a href="/openapi.json">OpenAPI</a>)</li>
<li>The demo card's link was printed by <code>make run</code> (<code>apple_pass_url</code>).</li></ul>
</body></html>"""
