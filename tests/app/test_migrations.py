"""The Alembic migrations build exactly the schema the models describe."""

from alembic import command
from sqlalchemy import text

from app.db import make_engine
from app.migrate import alembic_config
from tests.conftest import fresh_database


def test_migrations_match_the_models(database_url):
    command.check(alembic_config(database_url))  # raises when an autogenerate diff is found


def test_0008_starts_lock_free_tags_above_every_tag_a_device_holds(tmp_path_factory):
    """A database from before 0008 whose counter handed out tags up to 1,000,000: the tag base starts there, so
    a change after the upgrade is tagged above it, and `seen` starts at each row's own tag (true under the
    counter's lock). Downgrading puts the counter back above every tag handed out since."""
    with fresh_database(tmp_path_factory) as url:
        command.downgrade(alembic_config(url), "0007")
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE counters SET value = 1000000 WHERE name = 'pass_updates'"))
                conn.execute(text("INSERT INTO merchants (name, created_at) VALUES ('m', CURRENT_TIMESTAMP)"))
                conn.execute(text("INSERT INTO programs (merchant_id, name, currency, points_per_unit, rounding, "
                                  "background_color, foreground_color, label_color, barcode_format, locales, "
                                  "design_version, design_update_tag, created_at) SELECT id, 'p', 'USD', 1, "
                                  "'down', '#000000', '#FFFFFF', '#FFFFFF', 'qr', '[]', 1, 999999, CURRENT_TIMESTAMP "
                                  "FROM merchants"))
            command.upgrade(alembic_config(url), "head")
            with engine.begin() as conn:
                base = conn.scalar(text("SELECT value FROM counters WHERE name = 'update_tag_base'"))
                seen = conn.scalar(text("SELECT design_update_seen FROM programs"))
                if engine.dialect.name == "postgresql":
                    tag = conn.scalar(text("SELECT value + pg_current_xact_id()::text::bigint FROM counters "
                                           "WHERE name = 'update_tag_base'"))
                    assert tag > 1_000_000
                    conn.execute(text("UPDATE programs SET design_update_tag = :tag"), {"tag": tag})
            assert (base, seen) == (1_000_000, 999_999)
            command.downgrade(alembic_config(url), "0007")
            with engine.begin() as conn:
                counter = conn.scalar(text("SELECT value FROM counters WHERE name = 'pass_updates'"))
                highest = conn.scalar(text("SELECT max(design_update_tag) FROM programs"))
            assert counter >= highest and counter >= 1_000_000
        finally:
            engine.dispose()


def test_0017_gives_every_existing_balance_one_opening_lot(test_env, tmp_path_factory):
    """Balances from before lots: after 0017 each is one open lot that never expires, and verify is clean."""
    from app import create_app
    from app.config import load_config
    from app.domain.ledger import verify_balances
    from app.services import services
    from tests.factories import make_member, make_merchant, make_program, redeem

    with fresh_database(tmp_path_factory) as url:
        app = create_app(load_config({**test_env, "DATABASE_URL": url}), testing=True)
        client = app.test_client()
        _, key = make_merchant(app)
        member = make_member(client, key, make_program(client, key)["id"], points=100)
        redeem(client, key, member["id"], points=30)
        services(app).engine.dispose()
        command.downgrade(alembic_config(url), "0012")
        command.upgrade(alembic_config(url), "head")
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                lots = conn.execute(text("SELECT member_id, points, lot_remaining, expires_at FROM ledger_entries "
                                         "WHERE lot_remaining > 0")).all()
            assert lots == [(member["id"], 0, 70, None)]
            with app.app_context():
                session = services(app).sessions()
                assert verify_balances(session) == []
                session.close()
        finally:
            engine.dispose()
            services(app).engine.dispose()


def test_0028_marks_the_members_that_already_have_a_google_object(test_env, tmp_path_factory):
    """An earn reads members.google_object to decide whether Google must hear of it: a card saved before the
    column existed must have it set, or its Google copy would stop changing."""
    from app import create_app
    from app.config import load_config
    from app.services import services
    from tests.factories import make_member, make_merchant, make_program

    with fresh_database(tmp_path_factory) as url:
        app = create_app(load_config({**test_env, "DATABASE_URL": url}), testing=True)
        client = app.test_client()
        _, key = make_merchant(app)
        program_id = make_program(client, key)["id"]
        saved, never = (make_member(client, key, program_id)["id"] for _ in range(2))
        services(app).engine.dispose()
        command.downgrade(alembic_config(url), "0027")
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO google_objects (member_id, object_id, notified_at, message_ids, "
                                  "created_at) VALUES (:id, 'issuer.saved', '[]', '[]', CURRENT_TIMESTAMP)"),
                             {"id": saved})
            command.upgrade(alembic_config(url), "head")
            with engine.begin() as conn:
                flags = dict(conn.execute(text("SELECT id, google_object FROM members")).all())
            assert flags == {saved: True, never: False}
        finally:
            engine.dispose()
