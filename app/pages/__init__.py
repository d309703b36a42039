"""Public pages: the customer's card link (no API key; the token in the URL is the secret)."""

from __future__ import annotations

from flask import Blueprint, abort

from app import db_session
from app.cards import pkpass_response
from app.domain.members import find_by_download_token

bp = Blueprint("pages", __name__)


@bp.get("/cards/<token>.pkpass")
def public_pass(token: str):
    """`apple_pass_url`: opening it on an iPhone offers "Add to Apple Wallet"."""
    session = db_session()
    member = find_by_download_token(session, token) if len(token) >= 16 else None
    if member is None:
        abort(404)
    return pkpass_response(session, member)


@bp.get("/healthz")
def health():
    return {"status": "ok"}
