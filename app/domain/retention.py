"""Rows nobody reads again, deleted after their retention period (config `Retention`). The worker's sweep calls
`prune_expired` every few minutes and commits; nothing here commits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.config import Retention
from app.domain.devices import drop_oldest_device_logs
from app.models import DeviceLog, GoogleCallbackNonce, IdempotencyRecord, OutboxEvent


def prune_expired(session: Session, retention: Retention, now: datetime) -> dict[str, int]:
    """Idempotency records and delivered outbox events older than their period, device log lines older than
    theirs or beyond the cap; returns how many of each went. Dead letters stay until an operator revives them."""
    def older_than(days: int) -> datetime:
        return now - timedelta(days=days)

    return {
        "idempotency_records": session.execute(delete(IdempotencyRecord).where(
            IdempotencyRecord.created_at < older_than(retention.idempotency_days))).rowcount,
        "outbox_events": session.execute(delete(OutboxEvent).where(
            OutboxEvent.delivered_at < older_than(retention.outbox_days))).rowcount,
        "device_logs": session.execute(delete(DeviceLog).where(
            DeviceLog.created_at < older_than(retention.device_log_days))).rowcount
        + drop_oldest_device_logs(session, retention.device_log_max_lines),
        # a callback this old has expired (its expTimeMillis) and is refused anyway: its nonce guards nothing
        "google_callback_nonces": session.execute(delete(GoogleCallbackNonce).where(
            GoogleCallbackNonce.received_at < older_than(retention.idempotency_days))).rowcount,
    }
