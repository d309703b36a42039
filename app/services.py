"""What one app (the web app or a worker's) shares between requests and jobs, built once by `create_app`.

Code reads it through `services()`; nothing changes it after start-up except the relay's target, which the
entry point connects (rq, the embedded worker, or nothing in tests)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g
from flask_limiter import Limiter
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.api_key_cache import ApiKeyCache
from app.card_assets import CardAssetsCache
from app.config import Config
from app.relay import OutboxRelay
from passes import PassSigner

EXTENSION = "punchpass"


@dataclass(frozen=True)
class Services:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    signer: PassSigner
    signer_id: str  # short hash of the signing certificate: part of the signed-pass cache key
    card_assets: CardAssetsCache
    relay: OutboxRelay
    limiter: Limiter
    api_keys: ApiKeyCache  # the API keys this process has looked up (app/api_key_cache.py)


def services(app: Flask | None = None) -> Services:
    """The current app's services (or `app`'s, outside a request)."""
    return (app or current_app).extensions[EXTENSION]


def app_config() -> Config:
    return services().config


def db_session() -> Session:
    """One session per request or app context; closed (and rolled back if uncommitted) at teardown."""
    if "db_session" not in g:
        g.db_session = services().sessions()
    return g.db_session


def close_db_session(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
