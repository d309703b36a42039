"""Point lots: every credit is a lot with its own expiry (and, in a program with a returns window, a date it
becomes spendable). The lot is the credit's ledger entry itself (`lot_remaining`, `expires_at`, `pending_until`),
so an earn writes one row. Spending takes the soonest-expiring lots first and records what it took from each
(`lot_consumptions`); reversing a spend gives those lots back, with their own dates.

The member's row lock (ledger.lock_member) is held by every caller, so lots change one transaction at a time."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from app.db import insert_rows, update_changed
from app.domain.calendar import period_end, program_zone
from app.models import LedgerEntry, LotConsumption, Member, Program

EXPIRY_POLICIES = ("never", "rolling_days", "end_of_month", "end_of_year")


def expiry_for(program: Program, earned_at: datetime) -> datetime | None:
    """When a lot earned at `earned_at` expires: `rolling_days` N days later; `end_of_month` / `end_of_year` at
    the end (the next local midnight) of the month or year that `days` after the earn falls in, in the program's
    time zone; `never` not at all."""
    policy, days = program.expiry_policy, program.expiry_days or 0
    if policy == "rolling_days":
        return earned_at + timedelta(days=days)
    if policy in ("end_of_month", "end_of_year"):
        return period_end(program_zone(program), earned_at + timedelta(days=days), policy.removeprefix("end_of_"))
    return None


def spendable_lots(session: Session, member_id: int) -> list[LedgerEntry]:
    """The member's open, spendable lots in the order they are spent: soonest expiry first, lots that never
    expire last, older first among equals."""
    return list(session.scalars(_spendable_lots_statement(), {"member_id": member_id}))


@cache
def _spendable_lots_statement() -> Select:
    """Built once: building it cost about as much CPU as running it, on every redeem."""
    return (select(LedgerEntry).where(LedgerEntry.member_id == bindparam("member_id"), LedgerEntry.lot_remaining > 0,
                                      LedgerEntry.pending_until.is_(None))
            .order_by(LedgerEntry.expires_at.is_(None), LedgerEntry.expires_at, LedgerEntry.id))


def next_release(session: Session, member_id: int) -> datetime | None:
    """When the member's first pending lot becomes spendable."""
    return session.scalar(select(func.min(LedgerEntry.pending_until)).where(LedgerEntry.member_id == member_id,
                                                                            LedgerEntry.lot_remaining > 0))


def take(session: Session, entry: LedgerEntry, lots: list[LedgerEntry], points: int) -> int:
    """Take up to `points` from `lots` in their order, on behalf of `entry` (a spend, an expiry, a reversal);
    returns what was taken. Written at once with prebuilt statements (`update_changed`, `insert_rows`): every
    redeem takes from a lot, and the unit of work's flush of these rows cost more than the rest of the redeem's
    writes together (bench/profile_earn.py --mode redeem)."""
    if entry.id is None:
        session.flush()
    taken, consumed = 0, []
    for lot in lots:
        if taken == points:
            break
        part = min(lot.lot_remaining, points - taken)
        if part <= 0:
            continue
        lot.lot_remaining -= part
        update_changed(session, lot)
        taken += part
        consumed.append({"entry_id": entry.id, "lot_id": lot.id, "points": part})
    insert_rows(session, LotConsumption, consumed)
    return taken


def give_back(session: Session, spend: LedgerEntry, reversal: LedgerEntry, points: int) -> int:
    """Reverse up to `points` of `spend`: what it took goes back to the very lots it came from, last taken first,
    with their own expiry dates. Returns what was restored (less than `points` only for a spend older than lots,
    which recorded none)."""
    rows = session.execute(select(LotConsumption.lot_id, func.sum(LotConsumption.points))
                           .join(LedgerEntry, LedgerEntry.id == LotConsumption.entry_id)
                           .where((LotConsumption.entry_id == spend.id) | (LedgerEntry.reverses_id == spend.id))
                           .group_by(LotConsumption.lot_id).order_by(LotConsumption.lot_id.desc())).all()
    outstanding = {lot_id: int(total) for lot_id, total in rows if total > 0}
    lots = session.scalars(select(LedgerEntry).where(LedgerEntry.id.in_(outstanding))).all() if outstanding else []
    restored = 0
    for lot in sorted(lots, key=lambda lot: _spend_order(lot), reverse=True):
        part = min(outstanding[lot.id], points - restored)
        if part <= 0:
            break
        lot.lot_remaining += part
        restored += part
        session.add(LotConsumption(entry=reversal, lot=lot, points=-part))
    return restored


def _spend_order(lot: LedgerEntry) -> tuple:
    return (lot.expires_at is None, lot.expires_at or lot.created_at, lot.id)


def refresh_next_expiry(member: Member, lots: list[LedgerEntry]) -> None:
    """Cache on the member the soonest expiry among its spendable `lots` (all of them, freshly read) and the
    points that expire then: what the card and the member object show without a query."""
    dated = [lot for lot in lots if lot.lot_remaining > 0 and lot.expires_at is not None]
    if not dated:
        member.next_expiry_at, member.next_expiry_points = None, 0
        return
    soonest = min(lot.expires_at for lot in dated)
    member.next_expiry_at = soonest
    member.next_expiry_points = sum(lot.lot_remaining for lot in dated if lot.expires_at == soonest)


def note_new_lot(member: Member, lot: LedgerEntry) -> None:
    """Keep the cached next expiry right after a new spendable lot, without reading the others."""
    if lot.expires_at is None or lot.pending_until is not None:
        return
    if member.next_expiry_at is None or lot.expires_at < member.next_expiry_at:
        member.next_expiry_at, member.next_expiry_points = lot.expires_at, lot.lot_remaining
    elif lot.expires_at == member.next_expiry_at:
        member.next_expiry_points += lot.lot_remaining


def verify_lots(session: Session) -> list[dict]:
    """Every member whose spendable balance differs from the sum of their open spendable lots, or whose pending
    points differ from the sum of their pending lots."""
    spendable = func.coalesce(func.sum(case((LedgerEntry.pending_until.is_(None), LedgerEntry.lot_remaining),
                                            else_=0)), 0)
    pending = func.coalesce(func.sum(case((LedgerEntry.pending_until.is_not(None), LedgerEntry.lot_remaining),
                                          else_=0)), 0)
    sums = (select(LedgerEntry.member_id, spendable.label("spendable"), pending.label("pending"))
            .where(LedgerEntry.lot_remaining > 0).group_by(LedgerEntry.member_id).subquery())
    lots_spendable, lots_pending = func.coalesce(sums.c.spendable, 0), func.coalesce(sums.c.pending, 0)
    rows = session.execute(
        select(Member.id, Member.points_balance, lots_spendable, Member.pending_points, lots_pending)
        .outerjoin(sums, sums.c.member_id == Member.id)
        .where((Member.points_balance != lots_spendable) | (Member.pending_points != lots_pending))).all()
    return [{"member_id": member_id, "cached_balance": balance, "open_lots": int(open_lots),
             "pending_points": pending_points, "pending_lots": int(pending_lots),
             "problem": f"balance {balance} != open lots {int(open_lots)} or pending {pending_points} != "
                        f"pending lots {int(pending_lots)}"}
            for member_id, balance, open_lots, pending_points, pending_lots in rows]
