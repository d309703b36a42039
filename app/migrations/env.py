"""Alembic environment: the URL comes from the caller (`punchpass db upgrade`), never from alembic.ini."""

from alembic import context
from sqlalchemy import create_engine, pool

import app.models  # noqa: F401 - imported to register the tables on Base.metadata
from app.db import Base

url = context.config.get_main_option("sqlalchemy.url")
connection = context.config.attributes.get("connection")


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
