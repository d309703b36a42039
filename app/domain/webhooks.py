"""Merchants' webhooks: registration (the signing secret is generated here and shown once), one delivery per
event and webhook, every attempt recorded, retries with exponential backoff for up to RETRY_WINDOW, then dead
(still listed, and replayable). The worker (workers/webhooks.py) does the HTTP; this module decides what
happens next. Like the rest of the domain it never commits.

Two outbox kinds: WEBHOOK_EVENT is what `events.emit` writes (one row per event, whatever the number of the
merchant's webhooks); the worker fans it out into deliveries, each attempted through a WEBHOOK_DELIVERY row. A
failed attempt moves its row to the retry time decided here, so the outbox's own retry limits never apply. The
worker does both in batches (workers/webhooks.py), so the functions here take many at a time."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.events import EVENT_TYPES, add_channel
from app.domain.webhook_subscriptions import subscriptions
from app.domain.webhook_targets import check_url
from app.encryption import SecretBox
from app.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow

WEBHOOK_EVENT = "webhook"
WEBHOOK_DELIVERY = "webhook_delivery"
SECRET_PURPOSE = "webhook secrets"  # the SecretBox purpose the signing secrets are sealed under
RETRY_BASE, RETRY_CAP = timedelta(seconds=30), timedelta(hours=1)  # 30 s, 1 min, 2 min, ... then hourly
RETRY_WINDOW = timedelta(hours=24)  # from the first attempt's event (or the replay) to the last attempt
MAX_WEBHOOKS = 20  # per merchant: each one is a POST for every event it wants


def secret_owner(merchant_id: int) -> str:
    """What a sealed signing secret is bound to: copied onto another merchant's row, it does not open."""
    return f"merchant {merchant_id}"


def listens(session: Session, merchant_id: int, type: str, member_id: int | None) -> bool:
    """The webhook channel of `events.emit`: a dictionary lookup, no statement (webhook_subscriptions.py)."""
    return subscriptions(session).wants(session, merchant_id, type)


add_channel(WEBHOOK_EVENT, listens)


def create_webhook(session: Session, merchant_id: int, url: str, event_types: list[str], *, allow_private: bool,
                   box: SecretBox) -> tuple[WebhookEndpoint, str]:
    """The new webhook and its signing secret in clear: the only time the secret leaves Punchpass."""
    check_url(url, allow_private)
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if not event_types or unknown:
        raise InvalidInput("events", f"Unknown event types: {', '.join(unknown)}." if unknown else "Name at least one.")
    if session.scalar(select(func.count()).where(WebhookEndpoint.merchant_id == merchant_id)) >= MAX_WEBHOOKS:
        raise Conflict(f"A merchant has at most {MAX_WEBHOOKS} webhooks; delete one first.")
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    webhook = WebhookEndpoint(merchant_id=merchant_id, url=url, events=list(dict.fromkeys(event_types)),
                              sealed_secret=box.seal(secret, secret_owner(merchant_id)))
    session.add(webhook)
    session.flush()
    subscriptions(session).changed(session)
    return webhook, secret


def list_webhooks(session: Session, merchant_id: int) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant_id)
                                .order_by(WebhookEndpoint.id)))


def get_webhook(session: Session, merchant_id: int, webhook_id: int) -> WebhookEndpoint:
    webhook = session.get(WebhookEndpoint, webhook_id)
    if webhook is None or webhook.merchant_id != merchant_id:
        raise NotFound(f"No webhook {webhook_id}.")
    return webhook


def delete_webhook(session: Session, merchant_id: int, webhook_id: int) -> None:
    """Gone with its deliveries and attempts; pending attempts find nothing to send."""
    webhook = get_webhook(session, merchant_id, webhook_id)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.webhook_id == webhook.id))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    session.delete(webhook)
    session.flush()
    subscriptions(session).changed(session)


def attempts_page(session: Session, webhook: WebhookEndpoint, before: int | None, limit: int) -> list:
    """Every attempt, newest first, with its delivery's event and state: rows of (attempt, event_id,
    event_type, delivery status)."""
    query = (select(WebhookAttempt, WebhookDelivery.event_id, WebhookDelivery.event_type, WebhookDelivery.status)
             .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
             .where(WebhookAttempt.webhook_id == webhook.id))
    if before:
        query = query.where(WebhookAttempt.id < before)
    return session.execute(query.order_by(WebhookAttempt.id.desc()).limit(limit)).all()


def fan_out(session: Session, events: list[tuple[int, dict]]) -> list[int]:
    """For each (merchant id, event): one delivery (and its attempt's outbox row, due now) for each of the
    merchant's webhooks that wants the event; none twice, so a fan-out run again after a crash adds only what is
    missing. A batch of events costs the same few statements as one (each INSERT is one executemany). The new
    deliveries' ids."""
    merchants = {merchant_id for merchant_id, _ in events}
    hooks: dict[int, list[WebhookEndpoint]] = {}
    for hook in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.merchant_id.in_(merchants))
                                .order_by(WebhookEndpoint.id)):
        hooks.setdefault(hook.merchant_id, []).append(hook)
    done = set(session.execute(select(WebhookDelivery.webhook_id, WebhookDelivery.event_id)
                               .where(WebhookDelivery.event_id.in_({event["id"] for _, event in events}))).all())
    rows, now = [], utcnow()
    for merchant_id, event in events:
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        rows += [{"webhook_id": hook.id, "event_id": event["id"], "event_type": event["type"], "body": body,
                  "status": "pending", "window_started_at": now, "created_at": now}
                 for hook in hooks.get(merchant_id, ())
                 if event["type"] in hook.events and (hook.id, event["id"]) not in done]
    if not rows:
        return []
    session.execute(insert(WebhookDelivery), rows)  # an executemany: no RETURNING, which SQLite does row by row
    ids = [delivery_id for delivery_id, hook_id, event_id in session.execute(
        select(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.event_id)
        .where(WebhookDelivery.event_id.in_({row["event_id"] for row in rows})).order_by(WebhookDelivery.id))
        if (hook_id, event_id) not in done]
    session.execute(insert(OutboxEvent), [{"kind": WEBHOOK_DELIVERY, "payload": {"delivery_id": delivery_id},
                                           "created_at": now, "available_at": now, "attempts": 0}
                                          for delivery_id in ids])
    return ids


def deliveries_to_attempt(session: Session, delivery_ids: list[int]) -> dict[int, tuple[WebhookDelivery,
                                                                                      WebhookEndpoint]]:
    """The pending ones of these deliveries, with their webhooks (one statement); one delivered, dead, or whose
    webhook was deleted is left out."""
    rows = session.execute(select(WebhookDelivery, WebhookEndpoint)
                           .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.webhook_id)
                           .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.status == "pending")).all()
    return {delivery.id: (delivery, webhook) for delivery, webhook in rows}


@dataclass(frozen=True)
class AttemptResult:
    """One POST of a delivery: the receiver's status code (None: no answer), or why it failed. `give_up`:
    retrying cannot help (the signing secret cannot be read)."""

    delivery: WebhookDelivery
    status_code: int | None
    error: str | None
    duration_ms: int
    give_up: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def record_attempts(session: Session, results: list[AttemptResult], now: datetime) -> dict[int, datetime | None]:
    """A batch of attempts: a 2xx delivers; anything else (or no answer) schedules the next attempt, until the
    window closes or `give_up`: then the delivery is dead. The delivered ones are one UPDATE and every attempt
    one INSERT; failures (rare) cost a count each. Delivery id -> its next attempt's time (None: no more)."""
    retry_at: dict[int, datetime | None] = {}
    delivered = [result.delivery.id for result in results if result.delivered]
    if delivered:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(delivered))
                        .values(status="delivered", next_retry_at=None))
    for result in results:
        retry_at[result.delivery.id] = None if result.delivered else _failed(session, result, now)
    if results:
        session.execute(insert(WebhookAttempt), [
            {"delivery_id": result.delivery.id, "webhook_id": result.delivery.webhook_id, "attempted_at": now,
             "status_code": result.status_code, "error": result.error[:500] if result.error else None,
             "duration_ms": result.duration_ms, "next_retry_at": retry_at[result.delivery.id]}
            for result in results])
    return retry_at


def _failed(session: Session, result: AttemptResult, now: datetime) -> datetime | None:
    """The next attempt's time after a failure (the attempts since the window opened, this one included), or
    None when the delivery is dead."""
    delivery, retry_at = result.delivery, None
    if not result.give_up:
        failed = 1 + session.scalar(select(func.count()).where(
            WebhookAttempt.delivery_id == delivery.id, WebhookAttempt.attempted_at >= delivery.window_started_at))
        retry_at = retry_time(delivery.window_started_at, failed, now)
    delivery.status, delivery.next_retry_at = ("pending" if retry_at else "dead"), retry_at
    return retry_at


def retry_time(window_started_at: datetime, failed_attempts: int, now: datetime) -> datetime | None:
    """After the n-th failure: now + 30 s x 2^(n-1), at most an hour, and never past the window's end (the last
    attempt is at its end); None once the window has closed."""
    deadline = window_started_at + RETRY_WINDOW
    if now >= deadline:
        return None
    delay = min(RETRY_BASE * 2 ** min(failed_attempts - 1, 20), RETRY_CAP)
    return min(now + delay, deadline)


def replay(session: Session, merchant_id: int, webhook_id: int, delivery_id: int, now: datetime) -> WebhookDelivery:
    """Send a delivered or dead delivery again, the same body (the receiver dedupes on the event id), with a new
    retry window."""
    webhook = get_webhook(session, merchant_id, webhook_id)
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.webhook_id != webhook.id:
        raise NotFound(f"No delivery {delivery_id} for webhook {webhook_id}.")
    if delivery.status == "pending":
        raise Conflict(f"Delivery {delivery_id} is still being delivered; replay it once it is delivered or dead.")
    delivery.status, delivery.window_started_at, delivery.next_retry_at = "pending", now, now
    session.add(_attempt_row(delivery, now))
    session.flush()
    return delivery


def _attempt_row(delivery: WebhookDelivery, when: datetime | None = None) -> OutboxEvent:
    row = OutboxEvent(kind=WEBHOOK_DELIVERY, payload={"delivery_id": delivery.id})
    if when is not None:
        row.available_at = when
    return row
