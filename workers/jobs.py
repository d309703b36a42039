"""Delivering outbox events. Jobs take ids, not objects, and are idempotent: an event is leased by one worker
at a time, retried with backoff and jitter when the other side is briefly unwell, and kept as a dead letter
(visible with `punchpass outbox`) when it cannot be delivered."""

from __future__ import annotations

import logging
import os
import random
import socket
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import create_app
from app.domain.fcm import FCM
from app.domain.outbox import due_event_ids
from app.domain.passupdates import APPLE_PUSH, PROGRAM_REFRESH
from app.domain.webhooks import WEBHOOK_DELIVERY, WEBHOOK_EVENT
from app.models import OutboxEvent, utcnow
from app.services import db_session, services
from workers import campaigns, fcm, google_wallet, member_mail, offers, wallet_push, webhooks
from workers.errors import DeliveryFailed, RetryLater
from workers.wallet_push import CardOutcome, CardPush

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=120)  # a worker that dies mid-delivery gives the event back after this
MAX_ATTEMPTS = 8
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"[:200]  # who holds a lease (`punchpass outbox status`)
BACKOFF_BASE, BACKOFF_CAP = 2.0, 600.0  # seconds: 2, 4, 8, ... capped at 10 minutes, each with full jitter
BATCH_LIMIT = 500  # card pushes leased, pushed and recorded together
WEBHOOK_BATCH = 100  # webhook fan-outs, or attempts, leased and recorded together
BATCHED_KINDS = (APPLE_PUSH, *webhooks.BATCH_HANDLERS)  # delivered in batches, never one job per row

_worker_app: Flask | None = None


def use_app(app: Flask) -> None:
    """The app rq jobs of this process run with (`punchpass worker` sets it at start)."""
    global _worker_app
    _worker_app = app


def worker_app() -> Flask:
    """The app of this process's rq jobs (made here for a bare `rq worker`)."""
    if _worker_app is None:
        use_app(create_app())
    return _worker_app


def deliver(event_id: int) -> None:
    """rq entry point for one event (a program's fan-out): runs in `punchpass worker` with the worker's app."""
    deliver_event(worker_app(), event_id)


def deliver_due_pushes(app: Flask, limit: int = BATCH_LIMIT) -> Counter:
    """Deliver every due card push, a batch of `limit` at a time, until none is left; outcomes counted."""
    outcomes: Counter = Counter()
    while True:
        batch = deliver_pushes(app, limit=limit)
        outcomes.update(batch.values())
        if len(batch) < limit:
            return outcomes


def deliver_webhooks(limit: int = WEBHOOK_BATCH) -> None:
    """rq entry point: every due webhook fan-out and attempt, in batches."""
    deliver_due_webhooks(worker_app(), limit)


def deliver_due_webhooks(app: Flask, limit: int = WEBHOOK_BATCH) -> Counter:
    """Webhook events fanned out, then the deliveries that are due attempted (the new ones among them, so a
    delivery's first attempt is made by the job that fanned it out), a batch of each at a time until none is
    left, with the card pushes that came due between batches; outcomes counted."""
    outcomes: Counter = Counter()
    while True:
        fanned = _batch(app, WEBHOOK_EVENT, limit)
        attempted = _batch(app, WEBHOOK_DELIVERY, limit)
        outcomes.update(fanned.values())
        outcomes.update(attempted.values())
        if len(fanned) < limit and len(attempted) < limit:
            return outcomes
        _deliver_pushes_meanwhile(app)  # a card never waits for more than one batch of webhooks


def _batch(app: Flask, kind: str, limit: int) -> dict[int, str]:
    """Up to `limit` due rows of `kind` leased with one UPDATE and handed to its batch handler; a failure (a
    bug, the database away) retries each row with backoff, as a single event's would."""
    with app.app_context(), services(app).sessions() as session:
        events = _lease_due(session, kind, due_event_ids(session, limit, kind=kind))
        if not events:
            return {}
        try:
            return webhooks.BATCH_HANDLERS[kind](app, session, events)
        except Exception as error:
            log.exception("%d outbox event(s) (%s) failed", len(events), kind)
            session.rollback()
            return {event.id: _retry_or_bury(session, event.id, f"{type(error).__name__}: {error}")
                    for event in events}


def deliver_everything_due(app: Flask) -> Counter:
    """Card pushes first, then webhooks in batches, then every other due event (program fan-outs, Google, FCM,
    ...), draining the card pushes again after each one."""
    outcomes = deliver_due_pushes(app)
    outcomes.update(deliver_due_webhooks(app))
    with app.app_context(), services(app).sessions() as session:
        others = due_event_ids(session, exclude_kind=BATCHED_KINDS)
    for event_id in others:
        outcomes[deliver_event(app, event_id)] += 1
        outcomes.update(deliver_due_pushes(app))
    return outcomes


def deliver_pushes(app: Flask, ids: list[int] | None = None, limit: int = BATCH_LIMIT) -> dict[int, str]:
    """One batch of card pushes (the given events, or the first `limit` due): leased with one UPDATE, pushed
    over the one APNs connection, the delivered ones recorded with one UPDATE. What happened to each event."""
    with app.app_context(), services(app).sessions() as session:
        if ids is None:
            ids = due_event_ids(session, limit, kind=APPLE_PUSH)
        events = _lease_pushes(session, ids)
        if not events:
            return {}
        try:
            outcomes = wallet_push.push_cards(session, events)
        except Exception as error:  # a bug or a database hiccup: each event retried, and visible in the log
            log.exception("%d card push(es) failed", len(events))
            session.rollback()
            return {event.id: _retry_or_bury(session, event.id, f"{type(error).__name__}: {error}")
                    for event in events}
        return _record_pushes(session, events, outcomes)


def deliver_event(app: Flask, event_id: int) -> str:
    """Deliver one event and record the outcome: a card push as a batch of one, a program fan-out leased and
    pushed here, delivering due card pushes between its batches. Returns what happened, for logs and tests."""
    with app.app_context():
        session = db_session()
        kind = session.scalar(select(OutboxEvent.kind).where(OutboxEvent.id == event_id))
        session.commit()
        if kind == APPLE_PUSH:
            return deliver_pushes(app, [event_id]).get(event_id, "not due")
        if kind in webhooks.BATCH_HANDLERS:  # a job per row from before batches: the batch takes it with the rest
            outcomes = deliver_due_webhooks(app)
            return "delivered" if outcomes else "not due"
        event = _lease(session, event_id)
        if event is None:
            return "not due"  # delivered, dead, leased by another worker, or waiting for its retry time
        handler = HANDLERS.get(event.kind)
        if handler is None:
            return _bury(session, event_id, f"no handler for outbox kind {event.kind!r}")
        try:
            handler(app, session, event)
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


def _refresh_program(app: Flask, session: Session, event: OutboxEvent) -> None:
    wallet_push.refresh_program(session, event, between_batches=lambda: _deliver_pushes_meanwhile(app))


# How each kind of single event is delivered: (app, session, the leased event) -> None, raising RetryLater
# (try again with backoff) or DeliveryFailed (dead letter). Card pushes (APPLE_PUSH) go in batches instead.
HANDLERS: dict[str, Callable[[Flask, Session, OutboxEvent], None]] = {PROGRAM_REFRESH: _refresh_program,
                                                                     FCM: fcm.send_notification,
                                                                     **google_wallet.HANDLERS}
HANDLERS.update(member_mail.HANDLERS)  # lost-card magic links (workers/member_mail.py)
HANDLERS.update(campaigns.HANDLERS)  # campaign batches (workers/campaigns.py)
HANDLERS.update(offers.HANDLERS)  # personalised offers chosen again (workers/offers.py)


def _deliver_pushes_meanwhile(app: Flask) -> None:
    """Between a fan-out's batches: the card pushes that came due (their own session; a failure is logged and
    left to the next batch job, never failing the fan-out)."""
    try:
        deliver_due_pushes(app)
    except Exception:
        log.exception("card pushes between fan-out batches failed; the next batch job delivers them")


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


def _lease_pushes(session, ids: list[int]) -> list[CardPush]:
    """Take the due ones of these card pushes for LEASE with one conditional UPDATE, as `_lease` does one."""
    return sorted((CardPush(*row) for row in _lease_due(session, APPLE_PUSH, ids, with_member=True)),
                  key=lambda event: event.id)


def _lease_due(session, kind: str, ids: list[int], with_member: bool = False) -> list:
    """Take the due ones of these events of `kind` for LEASE with one conditional UPDATE (rows of id,
    [member_id,] payload, attempts), committed."""
    if not ids:
        return []
    now = utcnow()
    columns = (OutboxEvent.id, *((OutboxEvent.member_id,) if with_member else ()), OutboxEvent.payload,
               OutboxEvent.attempts)
    rows = session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(ids), OutboxEvent.kind == kind, OutboxEvent.delivered_at.is_(None),
               OutboxEvent.dead_at.is_(None), OutboxEvent.available_at <= now)
        .values(available_at=now + LEASE, attempts=OutboxEvent.attempts + 1, leased_at=now, leased_by=WORKER_ID)
        .returning(*columns)).all()
    session.commit()
    return sorted(rows, key=lambda row: row.id)


def _record_pushes(session, events: list[CardPush], outcomes: dict[int, CardOutcome]) -> dict[int, str]:
    """Give every lease back with its outcome, committed with the registrations Apple condemned: the delivered
    with one UPDATE, retries and dead letters (rare) one by one."""
    now, done = utcnow(), {}
    for event in events:
        outcome = outcomes[event.id]
        if outcome.error is None:
            done[event.id] = "delivered"
            continue
        values = {"payload": {**event.payload, "owed": outcome.owed}} if outcome.owed else {}
        error = str(outcome.error)
        if isinstance(outcome.error, RetryLater) and event.attempts < MAX_ATTEMPTS:
            delay = backoff_delay(event.attempts)
            log.warning("outbox event %s (%s) will be retried in %.1f s: %s", event.id, APPLE_PUSH, delay, error)
            values.update(available_at=now + timedelta(seconds=delay))
            done[event.id] = "retry"
        else:
            if isinstance(outcome.error, RetryLater):
                error = f"gave up after {event.attempts} attempts: {error}"
            log.error("outbox event %s is a dead letter: %s", event.id, error)
            values.update(dead_at=now)
            done[event.id] = "dead"
        session.execute(update(OutboxEvent).where(OutboxEvent.id == event.id)
                        .values(**values, last_error=error[:2000], leased_at=None, leased_by=None))
    delivered = [event_id for event_id, what in done.items() if what == "delivered"]
    if delivered:
        session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(delivered))
                        .values(delivered_at=now, last_error=None, leased_at=None, leased_by=None))
    session.commit()
    return done


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
