"""API keys: shown once, stored as SHA-256, scoped `admin` (everything) or `pos` (look up, earn, redeem, holds)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from apiflask import HTTPTokenAuth
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiKey
from app.services import db_session

SCOPES = ("admin", "pos")
ADMIN = ["admin"]
POS = ["admin", "pos"]  # what a till may do; an admin key may do it too

auth = HTTPTokenAuth(scheme="Bearer", description="An API key from `punchpass create-merchant` or "
                                                  "`punchpass create-api-key`.")


@dataclass(frozen=True)
class Caller:
    merchant_id: int
    scope: str
    key_id: int


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def issue_api_key(session: Session, merchant_id: int, scope: str) -> str:
    """Create a key and return it in clear: the only time it exists outside the caller's hands."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    raw = f"pp_{scope}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(merchant_id=merchant_id, scope=scope, prefix=raw[:12], key_hash=hash_api_key(raw)))
    return raw


@auth.verify_token
def _verify_token(token: str) -> Caller | None:
    if not token:
        return None
    key = db_session().scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(token),
                                                   ApiKey.revoked_at.is_(None)))
    return Caller(key.merchant_id, key.scope, key.id) if key else None


@auth.get_user_roles
def _roles(caller: Caller) -> list[str]:
    return [caller.scope]


def current_caller() -> Caller:
    return auth.current_user
