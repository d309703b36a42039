"""The dashboard's session: a signed cookie (HttpOnly, SameSite=Strict, Secure when the site is https) holding a
CSRF token and, once signed in, the user's id and the session generation they signed in under.

Every request looks the user up again: a cookie whose generation is older than the user's (after "sign out
everywhere" or a password change) signs nobody in. Every POST must carry the cookie's CSRF token in the form."""

from __future__ import annotations

import functools
import secrets

from flask import Request, Response, abort, current_app, g, redirect, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.domain.users import get_user
from app.models import User
from app.services import app_config, db_session
from app.till_sessions import CSRF_FIELD, csrf_matches

COOKIE = "punchpass_dashboard"
MAX_AGE = 12 * 3600  # a working day; every request renews it
_SALT = "punchpass-dashboard-session"

__all__ = ["COOKIE", "CSRF_FIELD", "current_user", "new_session", "owner_only", "read", "signed_in", "write"]


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


def new_session(user: User | None = None) -> dict:
    """A fresh CSRF token with every sign-in and sign-out."""
    session = {"csrf": secrets.token_urlsafe(24)}
    if user is not None:
        session.update(user_id=user.id, generation=user.session_generation)
    return session


def write(response: Response, session: dict) -> None:
    secure = request.is_secure or app_config().public_base_url.startswith("https://")
    response.set_cookie(COOKIE, _serializer().dumps(session), max_age=MAX_AGE, httponly=True, samesite="Strict",
                        secure=secure, path="/dashboard")


def current_user(session: dict) -> User | None:
    """The signed-in user, while the cookie's generation is the user's current one."""
    user_id, generation = session.get("user_id"), session.get("generation")
    if not isinstance(user_id, int) or not isinstance(generation, int):
        return None
    user = get_user(db_session(), user_id)
    return user if user is not None and user.session_generation == generation else None


def check_csrf() -> None:
    """Before every POST of the dashboard: the form's token must be the cookie's (else 400)."""
    if request.method == "POST" and not csrf_matches(read(request), request.form.get(CSRF_FIELD)):
        abort(400, "expired_form")


def signed_in(view):
    """The view gets `g.user` and `g.session`; without a valid session it redirects to sign-in, and a user with a
    one-time password is sent to change it first."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.session = read(request) or new_session()
        g.user = current_user(g.session)
        if g.user is None:
            return redirect(url_for("dashboard.sign_in", next=request.path), 303)
        if g.user.must_change_password and request.endpoint != "dashboard.change_password":
            return redirect(url_for("dashboard.change_password"), 303)
        return view(*args, **kwargs)
    return wrapper


def owner_only(view):
    """After `signed_in`: staff may read, and adjust members' points; everything else is the owner's (403)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if g.user.role != "owner":
            abort(403)
        return view(*args, **kwargs)
    return wrapper


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)
