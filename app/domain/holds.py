"""Two-phase redeem at the counter: a hold sets points aside, then exactly one of capture (spend them), void
(give them back) or expiry (the same, when its time runs out) finishes it.

Every step locks the member's row first and reads the hold again under that lock, so of a capture and a void
racing on one hold exactly one wins, and holds racing for one balance never set aside more than it affords.
Repeating a step that already happened answers with the hold as it is and changes nothing; the opposite step on
a finished hold is refused. The points movements themselves (`hold`, `capture` and `release` entries) are
written by the ledger (`ledger.hold_points`, `ledger.finish_hold`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain import ledger
from app.domain.errors import Conflict, NotFound
from app.domain.events import emit
from app.domain.ledger import CAPTURED, EXPIRED, HELD, SYSTEM, VOIDED, Actor
from app.models import Hold, LedgerEntry, Member, Reward

DEFAULT_TTL_SECONDS = 300
MAX_TTL_SECONDS = 3600
SWEEP_BATCH = 100  # holds per sweep transaction (each member stays locked until its commit); the next sweep goes on


def place_hold(session: Session, member: Member, points: int | None = None, *, reward: Reward | None = None,
               ttl_seconds: int = DEFAULT_TTL_SECONDS, reference: str | None = None, now: datetime,
               by: Actor = SYSTEM) -> Hold:
    """Set points (or a reward's cost) aside for `ttl_seconds`; too few available points is refused (409)."""
    return ledger.hold_points(session, member, points, reward=reward, reference=reference, by=by,
                              expires_at=now + timedelta(seconds=ttl_seconds))


def capture_hold(session: Session, merchant_id: int, hold_id: int, *, now: datetime,
                 by: Actor = SYSTEM) -> tuple[Hold, Member]:
    """Spend the held points, once: a hold already captured is returned as it is."""
    hold, member = _locked_hold(session, merchant_id, hold_id)
    if hold.status == CAPTURED:
        return hold, member
    if hold.status != HELD:
        raise Conflict(f"Hold {hold.id} is {hold.status}: its points were released and it can no longer be "
                       "captured. Place a new hold.")
    entry = ledger.finish_hold(session, member, hold, CAPTURED, now, by=by)
    emit(session, merchant_id=merchant_id, type="hold.captured", member_id=member.id, program_id=member.program_id,
         data={"hold_id": hold.id, "member_id": member.id, "points": hold.points, "transaction_id": entry.id,
               "reward_id": hold.reward_id})
    return hold, member


def void_hold(session: Session, merchant_id: int, hold_id: int, *, now: datetime,
              by: Actor = SYSTEM) -> tuple[Hold, Member]:
    """Give the held points back: a hold already voided or expired is returned as it is (its points are back);
    a captured one is refused, pointing at the reversal of its transaction."""
    hold, member = _locked_hold(session, merchant_id, hold_id)
    if hold.status == CAPTURED:
        entry = capture_entry(session, hold)
        raise Conflict(f"Hold {hold.id} was captured; to give its points back, reverse its transaction: "
                       f"POST /api/v1/transactions/{entry.id}/reverse.")
    if hold.status == HELD:
        ledger.finish_hold(session, member, hold, VOIDED, now, by=by)
    return hold, member


def get_hold(session: Session, merchant_id: int, hold_id: int) -> Hold:
    hold = session.get(Hold, hold_id)
    if hold is None or hold.merchant_id != merchant_id:
        raise NotFound(f"No hold {hold_id}.")
    return hold


def status_at(hold: Hold, now: datetime) -> str:
    """What the hold is now: one still marked held but past its expiry is expired (the sweep records it)."""
    return EXPIRED if hold.status == HELD and hold.expires_at <= now else hold.status


def capture_entry(session: Session, hold: Hold) -> LedgerEntry | None:
    """The `capture` entry of a captured hold: the transaction to reverse for a refund."""
    return session.scalar(select(LedgerEntry).where(LedgerEntry.hold_id == hold.id, LedgerEntry.kind == "capture"))


def live_holds(session: Session, member: Member, now: datetime) -> list[Hold]:
    """The member's holds that still count, oldest first."""
    if not member.held_points:
        return []
    return list(session.scalars(select(Hold).where(Hold.member_id == member.id, Hold.status == HELD,
                                                   Hold.expires_at > now).order_by(Hold.id)))


def expire_due_holds(session: Session, now: datetime, limit: int = SWEEP_BATCH) -> int:
    """The sweep: record the release of every hold past its expiry at `now` (a `release` entry each, and the
    card updates). Returns how many it expired; the caller commits. Safe beside requests and other sweeps: each
    member is locked first, and a hold finished meanwhile is left alone."""
    due = session.execute(select(Hold.id, Hold.member_id, Hold.merchant_id)
                          .where(Hold.status == HELD, Hold.expires_at <= now).order_by(Hold.id).limit(limit)).all()
    for member_id, merchant_id in sorted({(row.member_id, row.merchant_id) for row in due}):
        member = ledger.get_member_for_update(session, merchant_id, member_id)  # releases what is due by now
        ledger.release_due_holds(session, member, now)  # and what is due at `now`, when that is later
    if not due:
        return 0
    return session.scalar(select(func.count()).select_from(Hold).where(
        Hold.id.in_([row.id for row in due]), Hold.status == EXPIRED))


def _locked_hold(session: Session, merchant_id: int, hold_id: int) -> tuple[Hold, Member]:
    """The hold and its member, the member row locked and the hold read again under that lock (a capture or a
    void that committed meanwhile is seen; one that expired is released by the lock)."""
    hold = get_hold(session, merchant_id, hold_id)
    member = ledger.get_member_for_update(session, merchant_id, hold.member_id)
    session.refresh(hold)
    return hold, member
