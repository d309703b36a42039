"""Engine and session factory. Domain functions take a Session; the route or job commits once."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from sqlalchemy import Insert, Update, bindparam, create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, RelationshipDirection, Session, make_transient_to_detached, sessionmaker


class Base(DeclarativeBase):
    pass


def make_engine(database_url: str, hide_parameters: bool = True, pool_size: int = 10) -> Engine:
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
    return create_engine(database_url, pool_pre_ping=False, pool_recycle=300, pool_size=pool_size, max_overflow=20,
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


def transaction_scoped(session: Session, key: str, make):
    """A value kept in `session.info[key]` for the session's current transaction: a new transaction starts with
    `make()` (what was read under row locks stops being true when they are released)."""
    transaction = session.get_transaction()
    mark = session.info.get(key)
    if mark is None or mark[0] is not transaction:
        mark = session.info[key] = (transaction, make())
    return mark[1]


# The hot path's writes. The unit of work (session.flush) costs about 0.5-0.9 ms of CPU per object it writes,
# several times the statement itself; the ledger writes its rows with these two instead. The objects stay in
# the session, loaded and clean, exactly as a flush would have left them.

def insert_row(session: Session, row: Base) -> Base:
    """INSERT a new object with one Core statement and attach it to the session as if it had been loaded. For
    plain rows (no relationships set, column defaults computed in Python, which Core fills in here)."""
    mapper = inspect(row).mapper
    columns = _columns(mapper)
    given = {column: value for key, column in columns if (value := getattr(row, key)) is not None}
    result = session.connection().execute(_insert_statement(mapper.local_table), given)
    stored = {**result.last_inserted_params(), **dict(zip((c.key for c in mapper.primary_key),
                                                            result.inserted_primary_key, strict=True))}
    for key, column in columns:
        if column not in given:
            setattr(row, key, stored.get(column))
    make_transient_to_detached(row)
    session.add(row)  # persistent and unchanged: no flush writes it again
    return row


def insert_rows(session: Session, model: type[Base], rows: list[dict]) -> None:
    """INSERT plain rows (column name -> value) with one prebuilt statement, for rows nobody reads back as
    objects in this transaction."""
    if rows:
        session.connection().execute(_insert_statement(model.__table__), rows)


def update_changed(session: Session, row: Base) -> None:
    """UPDATE the columns of a loaded object that changed since it was loaded, in one Core statement, and mark
    the object clean. A changed relationship must agree with its foreign key (`tiers.show_tier` sets both); otherwise,
    or for an object not yet stored, the unit of work writes it as usual."""
    state = inspect(row)
    mapper = state.mapper
    changed = set(mapper.attrs.keys()) - state.unmodified
    columns = {key for key in changed if key in mapper.column_attrs}
    if not state.persistent or any(not _in_step(row, mapper.relationships[key]) for key in changed - columns):
        session.flush()
        return
    if columns:
        keys = {key: mapper.column_attrs[key].columns[0].key for key in columns}
        values = {column: getattr(row, key) for key, column in keys.items()}
        values.update((_PK_PREFIX + column.key, getattr(row, mapper.get_property_by_column(column).key))
                      for column in mapper.local_table.primary_key)
        session.connection().execute(_update_statement(mapper.local_table, frozenset(keys.values())), values)
    # Now clean, as a flush leaves it (the unit of work's own last step; there is no public call for it).
    state._commit_all(state.dict, session.identity_map)


# Statements built once per table (and set of columns): building one and its cache key per call costs about
# as much CPU as running it through SQLAlchemy's compiled cache.
_PK_PREFIX = "_pk_"


@cache
def _columns(mapper) -> tuple[tuple[str, str], ...]:
    """(attribute name, column name) of each column of a mapped class."""
    return tuple((prop.key, prop.columns[0].key) for prop in mapper.column_attrs)


@cache
def _insert_statement(table) -> Insert:
    return table.insert()


@cache
def _update_statement(table, columns: frozenset[str]) -> Update:
    return (table.update().where(*(column == bindparam(_PK_PREFIX + column.key) for column in table.primary_key))
            .values({name: bindparam(name) for name in columns}))


def _in_step(row: Base, relationship) -> bool:
    """A many-to-one relationship whose object agrees with the foreign key columns beside it."""
    if relationship.direction is not RelationshipDirection.MANYTOONE:
        return False
    target, mapper, other = getattr(row, relationship.key), relationship.parent, relationship.mapper
    return all(getattr(row, mapper.get_property_by_column(local).key)
               == (getattr(target, other.get_property_by_column(remote).key) if target is not None else None)
               for local, remote in relationship.local_remote_pairs)

