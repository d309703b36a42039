"""The customer's session on the public pages (/join, /member): one signed cookie, HttpOnly, SameSite=Lax (a
magic link opened from a mail app is a top-level cross-site navigation and must carry it), Secure when the site
is https. It holds a CSRF token for the pages' forms and, once the visitor has enrolled or opened a magic link,
the member's id and a fingerprint of their card link: `punchpass rotate-card-link` (a leaked card) ends every
session opened with the old one.

A visitor never names a member in a URL: the member page shows the session's member and no other."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Request, Response, current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.models import Member
from app.services import app_config

COOKIE = "punchpass_member"
CSRF_FIELD = "csrf_token"
MAX_AGE = 30 * 24 * 3600
_SALT = "punchpass-member-session"


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


def new_session(member: Member | None = None) -> dict:
    """A fresh CSRF token whenever who is signed in changes."""
    session = {"csrf": secrets.token_urlsafe(24)}
    if member is not None:
        session.update(member_id=member.id, card=card_fingerprint(member))
    return session


def signed_in_member(session: dict, member: Member | None) -> bool:
    """`member` (loaded from the session's id) is still the one the session was opened for."""
    return (member is not None and member.deleted_at is None and isinstance(session.get("card"), str)
            and hmac.compare_digest(session["card"], card_fingerprint(member)))


def card_fingerprint(member: Member) -> str:
    return hashlib.sha256(member.download_token.encode()).hexdigest()[:16]


def write(response: Response, session: dict, request: Request) -> None:
    response.set_cookie(COOKIE, _serializer().dumps(session), max_age=MAX_AGE, httponly=True, samesite="Lax",
                        secure=request.is_secure or app_config().public_base_url.startswith("https://"), path="/")


def csrf_matches(session: dict, presented: str | None) -> bool:
    return bool(session) and bool(presented) and hmac.compare_digest(session["csrf"], presented)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)
