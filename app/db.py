"""Engine and session factory. Domain functions take a Session; the route or job commits once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    pass


def make_engine(database_url: str, hide_parameters: bool = True) -> Engine:
    """SQLite gets WAL and a busy timeout so the embedded worker thread and requests can share it. Bound
    parameters (tokens, push tokens) stay out of error messages and tracebacks unless a test asks for them."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(database_url, connect_args={"timeout": 30, "check_same_thread": False},
                               hide_parameters=hide_parameters)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    # No pre-ping (a round trip per checkout): connections are replaced after 5 minutes instead, and one that
    # died meanwhile (a database restart) fails its request once; SQLAlchemy then invalidates the whole pool.
    return create_engine(database_url, pool_pre_ping=False, pool_recycle=300, pool_size=10, max_overflow=20,
                         hide_parameters=hide_parameters)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection) -> None:
    """Take SQLite's write lock at BEGIN so read-then-write transactions serialise instead of deadlocking."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")
