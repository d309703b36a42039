"""The till's hot path stays lean: the SQL one earn, redeem or member read sends cannot silently grow back."""

import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from app.services import services
from tests.factories import auth, earn, make_member, make_merchant, make_program, make_reward, redeem

# an api_keys SELECT (none with Redis once the process knows the key: app/api_key_cache.py); the member SELECT ...
# FOR UPDATE (with the program's config_version, and on PostgreSQL the update tag; the program, tiers and rewards
# come from the process's cache; the row says whether the card has a device or a Google object); the INSERT of the
# ledger entry; one UPDATE of the member; the idempotency INSERT. SQLite takes its update tag from the counter (one
# UPDATE more).
POSTGRESQL_WRITE_STATEMENTS = 5
# a redemption also reads the member's open lots (the soonest-expiring first), UPDATEs the lot it takes from and
# INSERTs the consumption that records what it took
REDEEM_LOT_STATEMENTS = 3


def write_statements(app) -> int:
    return POSTGRESQL_WRITE_STATEMENTS + (services(app).engine.dialect.name != "postgresql")


@contextmanager
def statements(app):
    """The SQL this thread sends (BEGIN and COMMIT aside: psycopg sends those itself on PostgreSQL)."""
    engine, thread, seen = services(app).engine, threading.get_ident(), []

    def record(_conn, _cursor, statement, *_):
        if threading.get_ident() == thread and not statement.lstrip().upper().startswith(("BEGIN", "COMMIT")):
            seen.append(" ".join(statement.split())[:100])
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def shop(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    make_reward(client, key, program["id"], "Free coffee", 100)
    make_reward(client, key, program["id"], "Free cake", 300)
    return key, make_member(client, key, program["id"], points=150)


def test_an_earn_sends_at_most_five_statements_on_postgresql(app, client, shop):
    key, member = shop
    with statements(app) as seen:
        assert earn(client, key, member["id"], points=10).status_code == 201
    assert len(seen) <= write_statements(app), seen


def test_a_redeem_sends_at_most_eight_statements_on_postgresql(app, client, shop):
    key, member = shop
    with statements(app) as seen:
        assert redeem(client, key, member["id"], points=10).status_code == 201
    assert len(seen) <= write_statements(app) + REDEEM_LOT_STATEMENTS, seen


def test_reading_a_member_sends_at_most_two_statements(app, client, shop):
    key, member = shop
    with statements(app) as seen:
        assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).status_code == 200
    assert len(seen) <= 2, seen  # api_keys; the member with the program's config_version (the rest is cached)
