"""The customer's session on the public pages (/join, /member): one signed cookie, HttpOnly, SameSite=Lax (a
magic link opened from a mail app is a top-level cross-site navigation and must carry it), Secure when the site
is https. It holds a CSRF token for the pages' forms and, once the visitor has enrolled or opened a magic link,
the member's id and a fingerprint of their card link: `punchpass rotate-card-link` (a leaked card) ends every
session opened with the old one.

A visitor never names a member in a URL: the member page shows the session's member and no other."""

from __future__ import annotations

import hashlib
import hmac

from flask import Request, Response

from app.models import Member
from app.signed_cookies import CSRF_FIELD, SignedCookie, csrf_matches, new_csrf_token

__all__ = ["COOKIE", "CSRF_FIELD", "card_fingerprint", "csrf_matches", "new_session", "read", "signed_in_member",
           "write"]

COOKIE = "punchpass_member"
MAX_AGE = 30 * 24 * 3600
_COOKIE = SignedCookie(COOKIE, "punchpass-member-session", MAX_AGE, samesite="Lax")


def read(request: Request) -> dict:
    """The session in the request's cookie ({} when absent, forged or too old)."""
    return _COOKIE.read(request)


def new_session(member: Member | None = None) -> dict:
    """A fresh CSRF token whenever who is signed in changes."""
    session = {"csrf": new_csrf_token()}
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
    _COOKIE.write(response, session, request)
