"""`events.emit` writes an outbox row per listening channel, in the caller's transaction, and nothing for nobody."""

from sqlalchemy import func, select

from app.domain import events
from app.models import Member, OutboxEvent
from app.services import db_session
from tests.factories import make_member, make_merchant, make_program


def _outbox_count(session, kind):
    return session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.kind == kind))


def _a_member(app, client) -> Member:
    _, key = make_merchant(app)
    program = make_program(client, key)
    return db_session().get(Member, make_member(client, key, program["id"])["id"])


def test_nobody_listening_writes_nothing(app, client):
    with app.app_context():
        session = db_session()
        member = _a_member(app, client)
        events.add_channel("test-deaf", lambda session, merchant_id, type, member_id: False)
        try:
            assert events.emit(session, merchant_id=member.merchant_id, type="points.earned", data={},
                               member_id=member.id) is None
            assert _outbox_count(session, "test-deaf") == 0
        finally:
            events._channels.pop("test-deaf")


def test_each_listening_channel_gets_the_same_event(app, client):
    with app.app_context():
        session = db_session()
        member = _a_member(app, client)
        heard = []
        events.add_channel("test-ears", lambda s, merchant_id, type, member_id: heard.append(type) or True)
        try:
            body = events.emit(session, merchant_id=member.merchant_id, type="tier.changed",
                               data={"tier": "Gold"}, member_id=member.id)
            session.commit()
            row = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "test-ears")).one()
        finally:
            events._channels.pop("test-ears")
        assert heard == ["tier.changed"]
        assert body["type"] == "tier.changed" and body["data"] == {"tier": "Gold"} and body["id"].startswith("evt_")
        assert row.payload == {"merchant_id": member.merchant_id, "event": body} and row.member_id == member.id


def test_unknown_event_type_is_a_bug(app):
    with app.app_context():
        try:
            events.emit(db_session(), merchant_id=1, type="points.teleported", data={})
        except ValueError as error:
            assert "points.teleported" in str(error)
        else:
            raise AssertionError("an unknown event type must raise")
