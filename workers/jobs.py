"""Delivering outbox events. Jobs take ids, not objects, and are idempotent: an event is leased by one worker
at a time, retried with backoff and jitter when the other side is briefly unwell, and kept as a dead letter
(visible with `punchpass outbox`) when it cannot be delivered."""

from __future__ import annotations

import logging
import os
import random
import socket
from datetime import timedelta

from flask import Flask
from sqlalchemy import update

from app import create_app
from app.domain.passupdates import APPLE_PUSH, PROGRAM_REFRESH
from app.models import OutboxEvent, utcnow
from app.services import db_session
from workers import wallet_push
from workers.errors import DeliveryFailed, RetryLater

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=120)  # a worker that dies mid-delivery gives the event back after this
MAX_ATTEMPTS = 8
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"[:200]  # who holds a lease (`punchpass outbox status`)
BACKOFF_BASE, BACKOFF_CAP = 2.0, 600.0  # seconds: 2, 4, 8, ... capped at 10 minutes, each with full jitter

HANDLERS = {APPLE_PUSH: wallet_push.push_member_pass, PROGRAM_REFRESH: wallet_push.refresh_program}


_worker_app: Flask | None = None


def use_app(app: Flask) -> None:
    """The app rq jobs of this process run with (`punchpass worker` sets it at start)."""
    global _worker_app
    _worker_app = app


def deliver(event_id: int) -> None:
    """rq entry point: runs in `punchpass worker` with the worker's app (made here for a bare `rq worker`)."""
    if _worker_app is None:
        use_app(create_app())
    deliver_event(_worker_app, event_id)


def deliver_event(app: Flask, event_id: int) -> str:
    """Lease the event, run its handler, record the outcome. Returns what happened, for logs and tests."""
    with app.app_context():
        session = db_session()
        event = _lease(session, event_id)
        if event is None:
            return "not due"  # delivered, dead, leased by another worker, or waiting for its retry time
        try:
            HANDLERS[event.kind](session, event)
        except RetryLater as error:
            return _retry_or_bury(session, event_id, str(error))
        except DeliveryFailed as error:
            return _bury(session, event_id, str(error))
        except Exception as error:  # a bug or a database hiccup: retried, and visible in the log
            log.exception("outbox event %s (%s) failed", event_id, event.kind)
            session.rollback()
            return _retry_or_bury(session, event_id, f"{type(error).__name__}: {error}")
        _finish(session, event_id, delivered_at=utcnow(), last_error=None)
        return "delivered"


def backoff_delay(attempts: int) -> float:
    """Exponential backoff with full jitter, so a recovering APNs is not hit by every retry at once."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE ** attempts))


def _lease(session, event_id: int) -> OutboxEvent | None:
    """Take the event for LEASE with one conditional UPDATE (no lock is held while we talk to Apple), signed with
    this worker's identity so an operator can see who holds it and since when."""
    now = utcnow()
    taken = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id == event_id, OutboxEvent.delivered_at.is_(None), OutboxEvent.dead_at.is_(None),
               OutboxEvent.available_at <= now)
        .values(available_at=now + LEASE, attempts=OutboxEvent.attempts + 1, leased_at=now,
                leased_by=WORKER_ID)).rowcount
    session.commit()
    return session.get(OutboxEvent, event_id, populate_existing=True) if taken else None


def _retry_or_bury(session, event_id: int, error: str) -> str:
    event = session.get(OutboxEvent, event_id, populate_existing=True)
    if event.attempts >= MAX_ATTEMPTS:
        return _bury(session, event_id, f"gave up after {event.attempts} attempts: {error}")
    delay = backoff_delay(event.attempts)
    log.warning("outbox event %s (%s) will be retried in %.1f s: %s", event_id, event.kind, delay, error)
    _finish(session, event_id, available_at=utcnow() + timedelta(seconds=delay), last_error=error[:2000])
    return "retry"


def _bury(session, event_id: int, error: str) -> str:
    log.error("outbox event %s is a dead letter: %s", event_id, error)
    _finish(session, event_id, dead_at=utcnow(), last_error=error[:2000])
    return "dead"


def _finish(session, event_id: int, **values) -> None:
    """Record the outcome and give the lease back."""
    session.rollback()
    session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id)
                    .values(**values, leased_at=None, leased_by=None))
    session.commit()
