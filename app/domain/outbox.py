"""What the operator sees of the outbox: how much is waiting, what is being retried, what died and why."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import OutboxEvent, utcnow


def due_event_ids(session: Session, limit: int = 500, kind: str | None = None,
                  exclude_kind: str | tuple[str, ...] | None = None) -> list[int]:
    """Pending events (of one kind, or of all but one or some, if given) whose time has come: new ones the relay
    missed, retries, expired leases."""
    query = select(OutboxEvent.id).where(OutboxEvent.delivered_at.is_(None), OutboxEvent.dead_at.is_(None),
                                         OutboxEvent.available_at <= utcnow())
    if kind is not None:
        query = query.where(OutboxEvent.kind == kind)
    if exclude_kind is not None:
        query = query.where(OutboxEvent.kind.not_in((exclude_kind,) if isinstance(exclude_kind, str) else exclude_kind))
    return list(session.scalars(query.order_by(OutboxEvent.id).limit(limit)))


def outbox_summary(session: Session, dead_limit: int = 20, lease_limit: int = 20) -> dict:
    """Counts (waiting: never tried; leased: a worker is delivering it now; retrying: tried, waiting for its next
    attempt; dead), the events held by a worker or whose holder vanished (`lease_expired`: the worker died or
    was stopped mid-delivery; the sweep hands the event to another), and the latest dead letters."""
    now = utcnow()
    pending = OutboxEvent.delivered_at.is_(None) & OutboxEvent.dead_at.is_(None)
    leased = pending & OutboxEvent.leased_by.is_not(None) & (OutboxEvent.available_at > now)
    waiting, leased_count, retrying, dead = session.execute(select(
        func.count().filter(pending & (OutboxEvent.attempts == 0)),
        func.count().filter(leased),
        func.count().filter(pending & (OutboxEvent.attempts > 0) & ~leased),
        func.count().filter(OutboxEvent.dead_at.is_not(None)),
    )).one()
    leases = session.execute(
        select(OutboxEvent.id, OutboxEvent.kind, OutboxEvent.member_id, OutboxEvent.attempts, OutboxEvent.leased_by,
               OutboxEvent.leased_at.label("since"), OutboxEvent.available_at.label("until"))
        .where(pending, OutboxEvent.leased_by.is_not(None)).order_by(OutboxEvent.id).limit(lease_limit)).all()
    dead_letters = session.execute(
        select(OutboxEvent.id, OutboxEvent.kind, OutboxEvent.member_id, OutboxEvent.attempts, OutboxEvent.dead_at,
               OutboxEvent.last_error)
        .where(OutboxEvent.dead_at.is_not(None)).order_by(OutboxEvent.id.desc()).limit(dead_limit)).all()
    return {"waiting": waiting, "leased": leased_count, "retrying": retrying, "dead": dead,
            "leases": [{**row._mapping, "lease_expired": row.until <= now} for row in leases],
            "dead_letters": [dict(row._mapping) for row in dead_letters]}


def revive_dead_events(session: Session) -> int:
    return session.execute(update(OutboxEvent).where(OutboxEvent.dead_at.is_not(None))
                           .values(dead_at=None, attempts=0, available_at=utcnow())).rowcount
