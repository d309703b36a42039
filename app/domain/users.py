"""Dashboard logins: one-time passwords, argon2 hashes, the account lock after wrong passwords, and the session
generation that "sign out everywhere" increments.

A one-time password (from `punchpass create-user`) signs in once, to a page that only changes it. Wrong passwords
count per account: the `MAX_FAILED_SIGN_INS`-th locks the account for `LOCK_DURATION`, whatever address they came
from (the per-address limit lives with the rate limits, app/ratelimits.py)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import Conflict, InvalidInput
from app.models import Merchant, User, utcnow

ROLES = ("owner", "staff")  # owner: everything; staff: reads, and adjusts members' points
MAX_FAILED_SIGN_INS = 5
LOCK_DURATION = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 "low memory") parameters
# Compared against when the email is unknown, so a wrong email takes as long as a wrong password.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountLocked(Exception):
    """Too many wrong passwords; `until` is when the account opens again."""

    def __init__(self, until: datetime):
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


def create_user(session: Session, merchant_id: int, email: str, role: str = "owner") -> tuple[User, str]:
    """The new user and their one-time password in clear: the only time it exists outside the hash."""
    email = _normal(email)
    if role not in ROLES:
        raise InvalidInput("role", f"Must be one of {', '.join(ROLES)}.")
    if "@" not in email or len(email) > 254:
        raise InvalidInput("email", "Must be an email address.")
    if session.get(Merchant, merchant_id) is None:
        raise InvalidInput("merchant", f"No merchant {merchant_id}.")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"A user with email {email} already exists.")
    user = User(merchant_id=merchant_id, email=email, role=role, password_hash="", must_change_password=True,
                session_generation=0, failed_sign_ins=0)
    session.add(user)
    password = new_one_time_password(session, user)  # 96 bits, typed once
    return user, password


def new_one_time_password(session: Session, user: User) -> str:
    """A fresh one-time password (to be changed at the next sign-in); every session of the user ends."""
    password = secrets.token_urlsafe(12)
    user.password_hash, user.must_change_password = _hasher.hash(password), True
    sign_out_everywhere(session, user)
    return password


def authenticate(session: Session, email: str, password: str, now: datetime | None = None) -> User | None:
    """The user when the password is right and the account not locked; None when wrong (counted). Raises
    AccountLocked while locked, even for the right password: the lock must not be a way to test guesses."""
    now = now or utcnow()
    user = session.scalar(select(User).where(User.email == _normal(email)).with_for_update())
    if user is None:
        _matches(_UNKNOWN_USER_HASH, password)
        return None
    if user.locked_until is not None and user.locked_until > now:
        raise AccountLocked(user.locked_until)
    if not _matches(user.password_hash, password):
        _count_wrong_password(session, user, now)
        return None
    user.failed_sign_ins, user.locked_until = 0, None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.flush()
    return user


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """Sets a new password and signs out every other session (the caller starts a fresh one)."""
    if not _matches(user.password_hash, current):
        _count_wrong_password(session, user, utcnow())
        raise InvalidInput("current_password", "The current password is wrong.")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("new_password", f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    if new == current:
        raise InvalidInput("new_password", "Choose a password other than the one-time password.")
    user.password_hash = _hasher.hash(new)
    user.must_change_password = False
    sign_out_everywhere(session, user)


def _count_wrong_password(session: Session, user: User, now: datetime) -> None:
    """At sign-in and when changing the password alike, so a stolen session cannot guess the password either:
    the MAX_FAILED_SIGN_INS-th wrong one locks the account and ends every session."""
    user.failed_sign_ins += 1
    if user.failed_sign_ins >= MAX_FAILED_SIGN_INS:
        user.failed_sign_ins, user.locked_until = 0, now + LOCK_DURATION
        user.session_generation += 1
    session.flush()


def sign_out_everywhere(session: Session, user: User) -> None:
    """Every session cookie issued before now stops working on its next request."""
    user.session_generation += 1
    session.flush()


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _normal(email: str) -> str:
    return email.strip().lower()
