"""Rows past their retention period are deleted by the scheduled job `prune_retention` (every 5 minutes: its
schedule is tested in test_scheduled_jobs.py)."""

import uuid
from datetime import timedelta

from sqlalchemy import select

from app.models import DeviceLog, IdempotencyRecord, OutboxEvent, utcnow
from app.services import services
from tests.factories import make_merchant
from workers.scheduled import prune_retention


def add_rows(app, merchant_id: int, age: timedelta) -> str:
    """One row of each kind `age` old (and a dead letter, which is never pruned), all marked with the returned
    marker (SQLite reuses the ids of deleted rows, so ids cannot tell batches apart)."""
    then, marker = utcnow() - age, uuid.uuid4().hex
    with services(app).sessions() as session:
        session.add_all([
            IdempotencyRecord(merchant_id=merchant_id, endpoint="earn", key=marker, request_hash="x", status_code=201,
                              response_body="{}", created_at=then),
            OutboxEvent(kind="apple_push", payload={"marker": marker, "row": "delivered"}, created_at=then,
                        delivered_at=then),
            OutboxEvent(kind="apple_push", payload={"marker": marker, "row": "dead"}, created_at=then, dead_at=then,
                        last_error="gone"),
            DeviceLog(message=marker, created_at=then),
        ])
        session.commit()
    return marker


def surviving(app, marker: str) -> set[str]:
    with services(app).sessions() as session:
        events = session.scalars(select(OutboxEvent).where(OutboxEvent.member_id.is_(None)))
        kinds = {event.payload["row"] for event in events if event.payload.get("marker") == marker}
        if session.scalar(select(IdempotencyRecord.id).where(IdempotencyRecord.key == marker)):
            kinds.add("idempotency")
        if session.scalar(select(DeviceLog.id).where(DeviceLog.message == marker)):
            kinds.add("device_log")
    return kinds


def test_sweep_deletes_rows_past_their_retention_and_keeps_the_rest(app):
    merchant_id, _ = make_merchant(app)
    old = add_rows(app, merchant_id, timedelta(days=31))
    recent = add_rows(app, merchant_id, timedelta(days=6))

    prune_now(app)

    assert surviving(app, old) == {"dead"}
    assert surviving(app, recent) == {"idempotency", "delivered", "dead", "device_log"}


def test_device_logs_live_longer_than_idempotency_records(app):
    merchant_id, _ = make_merchant(app)
    week_and_a_day = add_rows(app, merchant_id, timedelta(days=8))

    prune_now(app)

    assert surviving(app, week_and_a_day) == {"dead", "device_log"}


def prune_now(app) -> None:
    with services(app).sessions() as session:
        prune_retention(session, utcnow(), services(app).config)
        session.commit()
