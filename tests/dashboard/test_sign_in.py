"""Dashboard logins: the one-time password from `punchpass create-user`, argon2 hashes, the forced change, CSRF,
the sign-in limit, and signing out everywhere."""

from __future__ import annotations

import json
import uuid

from click.testing import CliRunner
from sqlalchemy import select

from app.cli import cli
from app.models import User
from app.services import services
from tests.dashboard.helpers import DashboardUser, make_user, signed_in_owner
from tests.factories import make_merchant


def email() -> str:
    return f"owner-{uuid.uuid4().hex[:8]}@example.com"


def stored_user(app, address: str) -> User:
    with app.app_context():
        session = services(app).sessions()
        user = session.scalar(select(User).where(User.email == address))
        session.expunge_all()
        session.close()
    return user


def test_create_user_prints_one_json_line_and_stores_only_an_argon2_hash(app, test_env, monkeypatch):
    for name, value in test_env.items():
        monkeypatch.setenv(name, value)
    merchant_id, _key = make_merchant(app)
    address = email()
    result = CliRunner().invoke(cli, ["create-user", "--merchant", str(merchant_id), "--email", address.upper(),
                                      "--role", "staff"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output.strip())
    assert set(printed) == {"user_id", "email", "password"} and printed["email"] == address
    user = stored_user(app, address)
    assert user.role == "staff" and user.must_change_password
    assert user.password_hash.startswith("$argon2id$") and printed["password"] not in user.password_hash


def test_one_time_password_only_opens_the_password_change(app):
    merchant_id, _key = make_merchant(app)
    address = email()
    one_time = make_user(app, merchant_id, address)
    person = DashboardUser(app)
    assert person.sign_in(address, one_time).status_code == 303
    overview = person.get("/dashboard")
    assert overview.status_code == 303 and overview.headers["Location"].endswith("/dashboard/password")
    person.set_password(one_time)
    assert person.get("/dashboard").status_code == 200
    assert not stored_user(app, address).must_change_password


def test_session_cookie_is_httponly_strict_and_secure(app):
    merchant_id, _key = make_merchant(app)
    address = email()
    response = DashboardUser(app).sign_in(address, make_user(app, merchant_id, address))
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("punchpass_dashboard="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie


def test_a_form_without_the_csrf_token_changes_nothing(app):
    merchant_id, _key = make_merchant(app)
    address = email()
    one_time = make_user(app, merchant_id, address)
    person = DashboardUser(app)
    assert person.post("/dashboard/sign-in", {"email": address, "password": one_time}, csrf=False).status_code == 400
    assert person.post("/dashboard/sign-in", {"email": address, "password": one_time,
                                              "csrf_token": "forged"}, csrf=False).status_code == 400
    person.sign_in_and_set_password(address, one_time)
    before = stored_user(app, address).session_generation
    assert person.post("/dashboard/sign-out-everywhere", {"csrf_token": "forged"}, csrf=False).status_code == 400
    assert stored_user(app, address).session_generation == before


def test_five_wrong_passwords_lock_the_account_from_any_address(app):
    merchant_id, _key = make_merchant(app)
    address = email()
    one_time = make_user(app, merchant_id, address)
    for _ in range(5):  # each from another address: only the account's own count can stop them
        assert DashboardUser(app).sign_in(address, "wrong password").status_code == 401
    locked = DashboardUser(app).sign_in(address, one_time)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many wrong passwords" in locked.get_data(as_text=True)


def test_five_wrong_passwords_from_one_address_are_rate_limited(app):
    merchant_id, _key = make_merchant(app)
    person = DashboardUser(app)
    for n in range(5):  # a different account each time: only the per-address limit can stop them
        assert person.sign_in(f"nobody-{n}-{uuid.uuid4().hex[:6]}@example.com", "guess").status_code == 401
    address = email()
    assert person.sign_in(address, make_user(app, merchant_id, address)).status_code == 429
    assert DashboardUser(app).sign_in(address, "wrong").status_code == 401  # another address is not limited


def test_sign_out_everywhere_ends_other_sessions(app):
    merchant_id, _key = make_merchant(app)
    address = email()
    laptop = signed_in_owner(app, merchant_id, address)
    phone = DashboardUser(app)
    assert phone.sign_in(address, "correct horse battery").status_code == 303
    assert phone.get("/dashboard").status_code == 200
    assert laptop.post("/dashboard/sign-out-everywhere", page="/dashboard").status_code == 303
    assert phone.get("/dashboard").status_code == 303
    assert laptop.get("/dashboard").status_code == 303


def test_sign_out_ends_this_session_only(app):
    merchant_id, _key = make_merchant(app)
    address = email()
    laptop = signed_in_owner(app, merchant_id, address)
    phone = DashboardUser(app)
    phone.sign_in(address, "correct horse battery")
    assert laptop.post("/dashboard/sign-out", page="/dashboard").status_code == 303
    assert laptop.get("/dashboard").status_code == 303
    assert phone.get("/dashboard").status_code == 200


def test_an_unknown_email_is_throttled_exactly_like_a_locked_account(app):
    merchant_id, _key = make_merchant(app)
    known, unknown = email(), email()
    make_user(app, merchant_id, known)
    answers = {}
    for address in (known, unknown):
        for _ in range(5):  # each from another address, so only the per-account count can answer
            assert DashboardUser(app).sign_in(address, "wrong password").status_code == 401
        answers[address] = DashboardUser(app).sign_in(address, "wrong password")
    assert answers[known].status_code == answers[unknown].status_code == 429
    assert answers[known].get_data(as_text=True).count("Too many wrong passwords") == 1
    assert "Too many wrong passwords" in answers[unknown].get_data(as_text=True)


def test_wrong_current_passwords_on_the_change_page_lock_the_account_and_end_the_session(app):
    merchant_id, _key = make_merchant(app)
    address = email()
    laptop = signed_in_owner(app, merchant_id, address)
    change = {"new_password": "another long password", "confirm_password": "another long password"}
    for _ in range(4):
        wrong = laptop.post("/dashboard/password", {"current_password": "guess", **change}, page="/dashboard/password")
        assert wrong.status_code == 422
    last = laptop.post("/dashboard/password", {"current_password": "guess", **change}, page="/dashboard/password")
    assert last.status_code == 303 and last.headers["Location"].endswith("/dashboard/sign-in")
    assert laptop.get("/dashboard").status_code == 303  # signed out
    assert DashboardUser(app).sign_in(address, "correct horse battery").status_code == 429  # and locked
