"""The checkout page's session: one signed cookie per browser, HttpOnly and SameSite=Strict (Secure when the
site is https), holding a CSRF token and, once the till has signed in, the id of its POS key. Never the key.

Every state-changing request from the page proves it came from the page: forms carry the token in a hidden
field, the page's `fetch` calls send it as `X-CSRF-Token`. The merchant API accepts the cookie only together with
that header (`app/auth.py`), so a cross-site form or image can never spend points with it.

Revoking the key ends every session made with it (the key is looked up on each request). Signing out clears
the cookie in that browser; a copied cookie is good until the key is revoked or `MAX_AGE` passes."""

from __future__ import annotations

import hmac
import secrets

from flask import Request, Response, current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.services import app_config

COOKIE = "punchpass_till"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
MAX_AGE = 30 * 24 * 3600  # a till signs in once a month at most
_SALT = "punchpass-till-session"


def read(request: Request) -> dict:
    """The session in the request's cookie ({} when absent, forged or too old)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return {}
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("csrf"), str) else {}


def new_session(key_id: int | None = None) -> dict:
    """A fresh CSRF token with every sign-in and sign-out, so a token seen before does not outlive them."""
    return {"csrf": secrets.token_urlsafe(24), **({"key_id": key_id} if key_id is not None else {})}


def write(response: Response, session: dict, request: Request) -> None:
    response.set_cookie(COOKIE, _serializer().dumps(session), max_age=MAX_AGE, httponly=True, samesite="Strict",
                        secure=_secure(request), path="/")


def csrf_matches(session: dict, presented: str | None) -> bool:
    return bool(session) and bool(presented) and hmac.compare_digest(session["csrf"], presented)


def api_key_id(request: Request) -> int | None:
    """The POS key behind a page's API call: the cookie's key, but only with a matching X-CSRF-Token header."""
    session = read(request)
    key_id = session.get("key_id")
    if not isinstance(key_id, int) or not csrf_matches(session, request.headers.get(CSRF_HEADER)):
        return None
    return key_id


def _secure(request: Request) -> bool:
    return request.is_secure or app_config().public_base_url.startswith("https://")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)
