"""The checkout page's session: one signed cookie per browser, HttpOnly and SameSite=Strict (Secure when the
site is https), holding a CSRF token and, once the till has signed in, the id of its POS key. Never the key.

Every state-changing request from the page proves it came from the page: forms carry the token in a hidden
field, the page's `fetch` calls send it as `X-CSRF-Token`. The merchant API accepts the cookie only together with
that header (`app/auth.py`), so a cross-site form or image can never spend points with it.

Revoking the key ends every session made with it (the key is looked up on each request). Signing out clears
the cookie in that browser; a copied cookie is good until the key is revoked or `MAX_AGE` passes."""

from __future__ import annotations

from flask import Request, Response

from app.signed_cookies import CSRF_FIELD, SignedCookie, csrf_matches, new_csrf_token

__all__ = ["COOKIE", "CSRF_FIELD", "CSRF_HEADER", "api_key_id", "csrf_matches", "new_session", "read", "write"]

COOKIE = "punchpass_till"
CSRF_HEADER = "X-CSRF-Token"
MAX_AGE = 30 * 24 * 3600  # a till signs in once a month at most
_COOKIE = SignedCookie(COOKIE, "punchpass-till-session", MAX_AGE)


def read(request: Request) -> dict:
    """The session in the request's cookie ({} when absent, forged or too old)."""
    return _COOKIE.read(request)


def new_session(key_id: int | None = None) -> dict:
    """A fresh CSRF token with every sign-in and sign-out, so a token seen before does not outlive them."""
    return {"csrf": new_csrf_token(), **({"key_id": key_id} if key_id is not None else {})}


def write(response: Response, session: dict, request: Request) -> None:
    _COOKIE.write(response, session, request)


def api_key_id(request: Request) -> int | None:
    """The POS key behind a page's API call: the cookie's key, but only with a matching X-CSRF-Token header."""
    session = read(request)
    key_id = session.get("key_id")
    if not isinstance(key_id, int) or not csrf_matches(session, request.headers.get(CSRF_HEADER)):
        return None
    return key_id
