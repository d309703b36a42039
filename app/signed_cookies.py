"""Sessions kept in one signed cookie (the checkout till's, the dashboard's, the customer's): HttpOnly, Secure
when the site is https, SameSite=Strict unless said otherwise, always holding a CSRF token. The server keeps
nothing; SECRET_KEY signs, a salt per cookie keeps one kind of session from passing for another, and `max_age`
bounds how long a copy stays good."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from flask import Request, Response, current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.services import app_config

CSRF_FIELD = "csrf_token"  # the hidden form field that carries the session's token


@dataclass(frozen=True)
class SignedCookie:
    name: str
    salt: str
    max_age: int  # seconds
    path: str = "/"
    samesite: str = "Strict"  # "Lax" where a link from a mail app (a cross-site navigation) must carry it

    def read(self, request: Request) -> dict:
        """The session in the request's cookie ({} when absent, forged or too old)."""
        raw = request.cookies.get(self.name)
        if not raw:
            return {}
        try:
            data = self._serializer().loads(raw, max_age=self.max_age)
        except BadSignature:
            return {}
        return data if isinstance(data, dict) and isinstance(data.get("csrf"), str) else {}

    def write(self, response: Response, session: dict, request: Request) -> None:
        secure = request.is_secure or app_config().public_base_url.startswith("https://")
        response.set_cookie(self.name, self._serializer().dumps(session), max_age=self.max_age, httponly=True,
                            samesite=self.samesite, secure=secure, path=self.path)

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=self.salt)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(session: dict, presented: str | None) -> bool:
    """Compared as bytes: compare_digest refuses non-ASCII str (a 500 for `X-CSRF-Token: é`)."""
    return bool(session) and bool(presented) and hmac.compare_digest(
        session["csrf"].encode(), presented.encode("utf-8", "surrogateescape"))
