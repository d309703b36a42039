"""/checkout: the staff page a till opens on any phone or tablet to scan a card, earn and redeem.

Only sign-in, sign-out and the page itself live here. Everything the till does after signing in is a call from
the page's script to the merchant API (`/api/v1/checkout/lookup`, `/members/{id}/earn`, holds, ...), authorised
by the session cookie plus `X-CSRF-Token` (`app/till_sessions.py`, `app/auth.py`): one set of rules for a POS
system and for the page, and the key never reaches the browser."""

from __future__ import annotations

from flask import Response, current_app, make_response, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

import app.till_sessions as till_sessions
from app.api.present import apple_pass_url
from app.auth import hash_api_key
from app.domain import members
from app.models import ApiKey, Program
from app.pages import bp
from app.pages.catalogue import LANGUAGE_NAMES, finish_page, page_locale, strings_for, t
from app.pairing import redeem_pairing_code
from app.qr import qr_svg
from app.services import app_config, db_session


@bp.get("/checkout")
def checkout():
    """The sign-in form, or (signed in) the till's screen."""
    session = till_sessions.read(request) or till_sessions.new_session()
    key = _signed_in_key(session)
    if key is None:
        return _sign_in_page(session)
    return _respond(session, render_template("checkout.html", **_page_context(session), key=key,
                                             boot=_boot_data(session, key)))


@bp.post("/checkout/sign-in")
def checkout_sign_in():
    """A POS key, or a pairing code that makes one; rate limited per address (RATE_LIMIT_SIGN_IN)."""
    session = till_sessions.read(request)
    if not till_sessions.csrf_matches(session, request.form.get(till_sessions.CSRF_FIELD)):
        return _sign_in_page(session or till_sessions.new_session(), "signin.expired_form", 400)
    credential = request.form.get("credential", "").strip()
    key, error = _key_for(credential)
    if key is None:
        return _sign_in_page(session, error, 401)
    db_session().commit()
    return _respond(till_sessions.new_session(key.id), redirect(url_for("pages.checkout"), 303))


@bp.post("/checkout/sign-out")
def checkout_sign_out():
    session = till_sessions.read(request)
    if not till_sessions.csrf_matches(session, request.form.get(till_sessions.CSRF_FIELD)):
        return _sign_in_page(session or till_sessions.new_session(), "signin.expired_form", 400)
    return _respond(till_sessions.new_session(), redirect(url_for("pages.checkout"), 303))


@bp.get("/checkout/members/<int:member_id>/card-qr.svg")
def card_qr(member_id: int):
    """The member's card link as a QR, for the customer's phone to scan at the counter. Signed-in tills only;
    an image request cannot send X-CSRF-Token, but it changes nothing and the cookie never goes cross-site."""
    key = _signed_in_key(till_sessions.read(request))
    if key is None:
        return Response(status=401)
    member = members.get_member(db_session(), key.merchant_id, member_id)
    response = Response(qr_svg(apple_pass_url(member)), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


def sign_in_throttled(retry_after: int) -> Response:
    """The rate limiter's answer on the sign-in form: the form again, saying to wait (429)."""
    response = _sign_in_page(till_sessions.read(request) or till_sessions.new_session(), "signin.too_many", 429)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _key_for(credential: str) -> tuple[ApiKey | None, str | None]:
    """The POS key a credential stands for, or the reason (a catalogue key) it signs nothing in."""
    session = db_session()
    if credential.startswith("pp_"):
        key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(credential),
                                                  ApiKey.revoked_at.is_(None)))
        if key is None:
            return None, "signin.bad_key"
        return (key, None) if key.scope == "pos" else (None, "signin.admin_key")
    key = redeem_pairing_code(session, credential) if credential else None
    return (key, None) if key else (None, "signin.bad_code")


def _signed_in_key(session: dict) -> ApiKey | None:
    """The session's POS key while it is not revoked: revoking the key signs every till using it out."""
    key_id = session.get("key_id")
    if not isinstance(key_id, int):
        return None
    return db_session().scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.scope == "pos",
                                                    ApiKey.revoked_at.is_(None)))


def _sign_in_page(session: dict, error: str | None = None, status: int = 200) -> Response:
    body = render_template("checkout_sign_in.html", **_page_context(session), error=error)
    return _respond(session, make_response(body, status))


def _page_context(session: dict) -> dict:
    locale = page_locale(request)
    return {"locale": locale, "languages": LANGUAGE_NAMES, "csrf": session["csrf"],
            "csrf_field": till_sessions.CSRF_FIELD, "t": lambda key, **values: t(key, locale, **values)}


def _boot_data(session: dict, key: ApiKey) -> dict:
    """What the page's script starts from: its strings, the CSRF token for its API calls, the programs a new
    member can join, and whether two-phase holds are available on this server."""
    locale = page_locale(request)
    programs = db_session().execute(select(Program.id, Program.name).where(Program.merchant_id == key.merchant_id)
                                    .order_by(Program.id)).all()
    return {"locale": locale, "csrf": session["csrf"], "store": key.store, "strings": strings_for(locale),
            "programs": [{"id": id_, "name": name} for id_, name in programs],
            "holds": _holds_available(), "public_base_url": app_config().public_base_url}


def _holds_available() -> bool:
    """Redeeming from the page places a hold and captures it on confirm; without the holds API it redeems at once
    after the same confirmation."""
    try:
        current_app.url_map.bind("").match("/api/v1/checkout/holds", method="POST")
    except HTTPException:
        return False
    return True


def _respond(session: dict, response) -> Response:
    """Every answer refreshes the session cookie and remembers a language picked with ?lang=."""
    response = make_response(response)
    till_sessions.write(response, session, request)
    return finish_page(response, request)
