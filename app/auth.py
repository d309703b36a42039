"""API keys: shown once, stored as SHA-256, scoped `admin` (everything) or `pos` (look up, earn, redeem, holds).

A request proves its key with `Authorization: Bearer <key>`, or, from the checkout page, with the till's session
cookie plus a matching `X-CSRF-Token` header (`app/till_sessions.py`): the page then calls the same API as any
POS, with the rights of the POS key the till signed in with, and the key itself never reaches the browser."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from apiflask import HTTPTokenAuth
from flask import g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

import app.till_sessions as till_sessions
from app.api_key_cache import mark_revoked
from app.domain.ledger import Actor
from app.models import ApiKey, utcnow
from app.services import db_session, services

SCOPES = ("admin", "pos")
ADMIN = ["admin"]
POS = ["admin", "pos"]  # what a till may do; an admin key may do it too



class ApiKeyAuth(HTTPTokenAuth):
    """The Bearer key; without one, the checkout page's session (cookie + X-CSRF-Token)."""

    def authenticate(self, auth, stored_password):
        if getattr(auth, "token", None):
            return super().authenticate(auth, stored_password)
        key_id = till_sessions.api_key_id(request)
        if key_id is None:
            return None
        return services().api_keys.get(("till", key_id), lambda: _caller(ApiKey.id == key_id, ApiKey.scope == "pos"),
                                       _revocation_generation())


auth = ApiKeyAuth(scheme="Bearer", description="An API key from `punchpass create-merchant` or "
                                               "`punchpass create-api-key`.")


@dataclass(frozen=True)
class Caller:
    merchant_id: int
    scope: str
    key_id: int
    store: str | None = None

    @property
    def actor(self) -> Actor:
        """The caller as the ledger records it on every entry."""
        return Actor(api_key_id=self.key_id, store=self.store, admin=self.scope == "admin")


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def issue_api_key(session: Session, merchant_id: int, scope: str) -> str:
    """Create a key and return it in clear: the only time it exists outside the caller's hands."""
    return new_api_key(session, merchant_id, scope)[0]


def new_api_key(session: Session, merchant_id: int, scope: str, store: str | None = None) -> tuple[str, ApiKey]:
    """The key in clear and its row (flushed, so it has its id: what `revoke_api_key` takes). `store` labels a
    till's key (which shop it is in), for the operator who later revokes it."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    raw = f"pp_{scope}_{secrets.token_urlsafe(32)}"
    row = ApiKey(merchant_id=merchant_id, scope=scope, prefix=raw[:12], key_hash=hash_api_key(raw), store=store)
    session.add(row)
    session.flush()
    return raw, row


def revoke_api_key(session: Session, key_id: int) -> ApiKey | None:
    """Revoked from the commit on, in every process: the commit replaces the revocation generation every
    process's cached keys are checked against (app/api_key_cache.py). A key revoked before keeps its first
    revocation time (revoking it again announces it again); None for an unknown id."""
    key = session.get(ApiKey, key_id, with_for_update=True)
    if key is not None:
        key.revoked_at = key.revoked_at or utcnow()
        mark_revoked(session)
    return key


@auth.verify_token
def _verify_token(token: str) -> Caller | None:
    """From the process's cache while no key was revoked since (one Redis round trip), else the database: a
    revocation takes effect at once on every process (app/api_key_cache.py)."""
    if not token:
        return None
    key_hash = hash_api_key(token)
    return services().api_keys.get(key_hash, lambda: _caller(ApiKey.key_hash == key_hash), _revocation_generation())


def _revocation_generation() -> bytes | None:
    """Read with the key's rate limit before the view (app/ratelimits.ApiKeyLimit); None: ask the database."""
    return g.get("api_key_generation")


def _caller(*where) -> Caller | None:
    key = db_session().execute(select(ApiKey.merchant_id, ApiKey.scope, ApiKey.id, ApiKey.store)  # no ORM object
                               .where(*where, ApiKey.revoked_at.is_(None))).first()
    return Caller(*key) if key else None


@auth.get_user_roles
def _roles(caller: Caller) -> list[str]:
    return [caller.scope]


def current_caller() -> Caller:
    return auth.current_user
