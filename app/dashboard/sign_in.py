"""Signing in and out of the dashboard, and the forced change of a one-time password."""

from __future__ import annotations

from flask import g, redirect, request, url_for

from app.dashboard import bp, sessions
from app.dashboard.rendering import render, respond
from app.domain import users
from app.domain.errors import InvalidInput
from app.services import db_session

SIGN_IN_ENDPOINT = "dashboard.sign_in_submit"


@bp.before_request
def _csrf():
    sessions.check_csrf()


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
def _error_page(error):
    """A person reads these: the dashboard's own page, not the API's problem+json."""
    key = {400: "dash.error.form", 403: "dash.error.forbidden", 404: "dash.error.not_found"}[error.code]
    g.session = getattr(g, "session", None) or sessions.read(request) or sessions.new_session()
    return render("dashboard/error.html", error.code, message=key)


@bp.get("/sign-in")
def sign_in():
    g.session = sessions.read(request) or sessions.new_session()
    if sessions.current_user(g.session) is not None:
        return redirect(url_for("dashboard.overview"), 303)
    return _sign_in_page()


@bp.post("/sign-in")
def sign_in_submit():
    """Wrong password: 401 (counted per account and, by the rate limiter, per address); locked: 429."""
    session = db_session()
    g.session = sessions.read(request)
    try:
        user = users.authenticate(session, request.form.get("email", ""), request.form.get("password", ""))
    except users.AccountLocked:
        session.commit()
        return sign_in_throttled(int(users.LOCK_DURATION.total_seconds()))
    session.commit()
    if user is None:
        return _sign_in_page("dash.signin.wrong", 401)
    g.session = sessions.new_session(user)
    return respond(redirect(_next_page(), 303), g.session)


@bp.post("/sign-out")
@sessions.signed_in
def sign_out():
    g.session = sessions.new_session()
    return respond(redirect(url_for("dashboard.sign_in"), 303), g.session)


@bp.post("/sign-out-everywhere")
@sessions.signed_in
def sign_out_everywhere():
    """Ends this and every other session of the user (a lost phone, a shared computer)."""
    users.sign_out_everywhere(db_session(), g.user)
    db_session().commit()
    g.session = sessions.new_session()
    return respond(redirect(url_for("dashboard.sign_in"), 303), g.session)


@bp.route("/password", methods=["GET", "POST"])
@sessions.signed_in
def change_password():
    """The only page a user with a one-time password can open; also how anyone changes theirs."""
    if request.method == "GET":
        return render("dashboard/password.html")
    session = db_session()
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        return render("dashboard/password.html", 422, error="dash.password.mismatch")
    try:
        users.change_password(session, g.user, request.form.get("current_password", ""), new)
    except InvalidInput as error:
        if error.field != "current_password":
            session.rollback()
            return render("dashboard/password.html", 422, error="dash.password.rules",
                          min_length=users.MIN_PASSWORD_LENGTH)
        session.commit()  # the wrong password is counted; the last one allowed ends this session too
        if sessions.current_user(g.session) is None:
            g.session = sessions.new_session()
            return respond(redirect(url_for("dashboard.sign_in"), 303), g.session)
        return render("dashboard/password.html", 422, error="dash.password.wrong",
                      min_length=users.MIN_PASSWORD_LENGTH)
    session.commit()
    g.session = sessions.new_session(g.user)  # the other sessions ended with the change; this one goes on
    return respond(redirect(url_for("dashboard.overview"), 303), g.session)


def sign_in_throttled(retry_after: int):
    """Locked account or too many wrong passwords from this address: the form again, saying to wait (429)."""
    response = _sign_in_page("dash.signin.locked", 429)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _sign_in_page(error: str | None = None, status: int = 200):
    g.session = getattr(g, "session", None) or sessions.read(request) or sessions.new_session()
    return render("dashboard/sign_in.html", status, error=error, email=request.form.get("email", ""),
                  next=request.values.get("next", ""))


def _next_page() -> str:
    """Back to the page that asked for sign-in: only a path inside the dashboard, never another site."""
    target = request.form.get("next", "")
    if target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.overview")
