"""Alembic, driven from code: `punchpass db upgrade` and the tests use the same function."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from app.db import make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Idempotent: a database already at head is left as it is."""
    if database_url.startswith("sqlite"):
        make_engine(database_url).dispose()  # creates the parent folder
    command.upgrade(alembic_config(database_url), revision)
