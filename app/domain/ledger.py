"""The points ledger: append-only entries; the member's balance is their sum.

Every operation first locks the member row (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers
with BEGIN IMMEDIATE), so concurrent redeems cannot overspend and balance checks see committed values. A write
route loads its member already locked (`get_member_for_update`: one statement with the program and its tiers);
the lock is then taken once per transaction, not again by each operation."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.domain import lots
from app.domain.errors import Conflict, InsufficientPoints, InvalidInput, NotFound
from app.domain.passupdates import card_changed
from app.domain.tiers import QUALIFYING_KINDS, after_credit, after_reversal
from app.models import LedgerEntry, Member, Program, Reward, utcnow

MAX_POINTS = 10_000_000


_LOCKED = "ledger_locked_members"  # session.info: (the transaction, ids of the members it locked)


def get_member_for_update(session: Session, merchant_id: int, member_id: int) -> Member:
    """The merchant's member, row-locked until commit, with what an operation and its answer read: the program,
    its tiers (one statement: the rows a join adds are a handful) and its rewards (a second one)."""
    member = _lock(session, Member.id == member_id, Member.merchant_id == merchant_id, Member.deleted_at.is_(None))
    if member is None:
        raise NotFound(f"No member {member_id}.")
    return member


def lock_member_id(session: Session, member_id: int) -> Member | None:
    """A member by id, row-locked until commit (for sweeps, which find members by what is due)."""
    return _lock(session, Member.id == member_id)


def lock_member(session: Session, member: Member) -> Member:
    """The member with their row locked; a member this transaction already locked is returned as it is."""
    if member.id in _locked_ids(session):
        return member
    return _lock(session, Member.id == member.id)


def _lock(session: Session, *where) -> Member | None:
    member = session.scalars(
        select(Member).where(*where).with_for_update(of=Member)
        .options(joinedload(Member.program).joinedload(Program.tiers),
                 joinedload(Member.program).selectinload(Program.rewards))
        .execution_options(populate_existing=True)).unique().one_or_none()
    if member is not None:
        _locked_ids(session).add(member.id)
    return member


def _locked_ids(session: Session) -> set[int]:
    """Ids locked in the session's current transaction; a new transaction starts with none."""
    transaction = session.get_transaction()
    mark = session.info.get(_LOCKED)
    if mark is None or mark[0] is not transaction:
        mark = session.info[_LOCKED] = (transaction, set())
    return mark[1]


def earn_points(session: Session, member: Member, points: int, *, amount: Decimal | None = None,
                reference: str | None = None, reason: str | None = None, kind: str = "earn",
                rule: str | None = None) -> LedgerEntry:
    """Credit `points` as a new lot: with the program's expiry, and pending for its returns window if it has
    one. Qualifying credits count towards the tier at once."""
    _check_points(points, allow_zero=amount is not None)
    member = lock_member(session, member)
    program, now = member.program, utcnow()
    pending_until = now + timedelta(days=program.pending_days) if program.pending_days and points else None
    if kind in QUALIFYING_KINDS:
        member.lifetime_points += points
    if pending_until is not None:
        member.pending_points += points
    entry = _append(session, member, kind, points, spendable=0 if pending_until else points, amount=amount,
                    reference=reference, reason=reason, rule=rule,
                    lot=dict(lot_remaining=points, expires_at=lots.expiry_for(program, now),
                             pending_until=pending_until),
                    credit=(amount if program.tier_basis == "spend" else points) if kind in QUALIFYING_KINDS else 0)
    lots.note_new_lot(member, entry)
    return entry


def redeem_points(session: Session, member: Member, points: int | None = None, *, reward: Reward | None = None,
                  reference: str | None = None, reason: str | None = None) -> LedgerEntry:
    """Spend points (or a reward's cost) from the soonest-expiring lots; refused with nothing written when the
    available balance is short."""
    cost = reward.points_cost if reward is not None else points
    _check_points(cost)
    member = lock_member(session, member)
    if cost > member.available_points:
        raise InsufficientPoints(f"This needs {cost} points; the member has {member.available_points} available.")
    return _spend(session, member, "redeem", cost, reward=reward, reference=reference,
                  reason=reason or (reward.name if reward else None))


def adjust_points(session: Session, member: Member, points: int, *, reason: str,
                  reference: str | None = None) -> LedgerEntry:
    """A manual correction with a mandatory reason: a credit is a new lot, a debit takes from the lots like a
    spend and never takes the balance below zero."""
    if points == 0 or abs(points) > MAX_POINTS:
        raise InvalidInput("points", f"Must be a non-zero whole number up to {MAX_POINTS}.")
    member = lock_member(session, member)
    if points > 0:
        return earn_points(session, member, points, reference=reference, reason=reason, kind="adjust",
                           rule="manual adjustment")
    if member.available_points + points < 0:
        raise InsufficientPoints(f"The member has only {member.available_points} points.")
    return _spend(session, member, "adjust", -points, reference=reference, reason=reason)


def _spend(session: Session, member: Member, kind: str, points: int, **fields) -> LedgerEntry:
    open_lots = lots.spendable_lots(session, member.id)
    entry = _append(session, member, kind, -points, spendable=-points, **fields)
    lots.take(session, entry, open_lots, points)
    lots.refresh_next_expiry(member, open_lots)
    return entry


def reverse_entry(session: Session, merchant_id: int, entry_id: int, points: int | None = None,
                  reference: str | None = None) -> tuple[LedgerEntry, int]:
    """Undo all or part of a credit or a spend, by the original entry's points (never recomputed at today's
    rules). A reversed spend gives its lots back with their dates; a reversed credit takes from its own lot
    first (a pending one is simply cancelled), then from the soonest-expiring others. Returns the reversal and
    the shortfall: points the member had already spent, reported rather than driving the balance negative."""
    original = session.get(LedgerEntry, entry_id)
    if original is None or original.merchant_id != merchant_id:
        raise NotFound(f"No transaction {entry_id}.")
    if original.kind in ("reversal", "expire") or original.points == 0:
        raise Conflict(f"A {original.kind if original.points else 'zero-point entry'} cannot be reversed.")
    member = _lock(session, Member.id == original.member_id)
    remaining = abs(original.points) - _already_reversed(session, original.id)
    wanted = remaining if points is None else points
    if remaining <= 0:
        raise Conflict(f"Transaction {entry_id} is already fully reversed.")
    if wanted <= 0 or wanted > remaining:
        raise InvalidInput("points", f"Must be between 1 and {remaining}, the part not yet reversed.")
    if original.points < 0:
        return _reverse_spend(session, member, original, wanted, reference), 0
    return _reverse_credit(session, member, original, wanted, reference)


def _reverse_spend(session: Session, member: Member, spend: LedgerEntry, wanted: int,
                   reference: str | None) -> LedgerEntry:
    entry = _append(session, member, "reversal", wanted, spendable=wanted, reference=reference, reverses=spend,
                    rule=f"reverses #{spend.id}")
    restored = lots.give_back(session, spend, entry, wanted)
    if restored < wanted:  # a spend from before lots recorded none: the rest comes back as a lot of its own
        entry.lot_remaining = wanted - restored
    lots.refresh_next_expiry(member, lots.spendable_lots(session, member.id))
    return entry


def _reverse_credit(session: Session, member: Member, credit: LedgerEntry, wanted: int,
                    reference: str | None) -> tuple[LedgerEntry, int]:
    if credit.kind in QUALIFYING_KINDS:
        member.lifetime_points -= wanted
    rule = f"reverses #{credit.id}"
    if credit.pending_until is not None:  # not spendable yet: cancelled, nothing was spent
        taken = min(wanted, credit.lot_remaining or 0)
        member.pending_points -= taken
        entry = _append(session, member, "reversal", -taken, spendable=0, reference=reference, reverses=credit,
                        shortfall=wanted - taken, rule=rule)
        lots.take(session, entry, [credit], taken)
    else:
        open_lots = lots.spendable_lots(session, member.id)
        taken = min(wanted, max(member.available_points, 0))
        entry = _append(session, member, "reversal", -taken, spendable=-taken, reference=reference,
                        reverses=credit, shortfall=wanted - taken, rule=rule)
        lots.take(session, entry, sorted(open_lots, key=lambda lot: lot is not credit), taken)
        lots.refresh_next_expiry(member, open_lots)
    if credit.kind in QUALIFYING_KINDS:
        after_reversal(session, member, utcnow())  # the tier these points reached is taken back with them
    return entry, wanted - taken


def expire_due_lots(session: Session, member: Member, as_of: datetime) -> LedgerEntry | None:
    """Expire what is left of the member's lots whose date has come by `as_of`: one `expire` entry taking them,
    and the card updates. None when nothing was due (so running it twice changes nothing)."""
    member = lock_member(session, member)
    open_lots = lots.spendable_lots(session, member.id)
    due = [lot for lot in open_lots if lot.expires_at is not None and lot.expires_at <= as_of]
    points = sum(lot.lot_remaining for lot in due)
    if not points:
        return None
    points = min(points, member.points_balance)  # never below zero, whatever the lots say
    entry = _append(session, member, "expire", -points, spendable=-points, reason="Points expired",
                    rule=f"expiry: {member.program.expiry_policy}")
    lots.take(session, entry, due, points)
    lots.refresh_next_expiry(member, open_lots)
    return entry


def release_pending_lots(session: Session, member: Member, as_of: datetime) -> int:
    """Pending lots whose returns window has passed by `as_of` become spendable; returns the points released."""
    member = lock_member(session, member)
    due = list(session.scalars(select(LedgerEntry).where(
        LedgerEntry.member_id == member.id, LedgerEntry.pending_until <= as_of)))
    points = sum(lot.lot_remaining or 0 for lot in due)
    for lot in due:
        lot.pending_until = None
    if due:
        member.pending_points -= points
        member.points_balance += points
        lots.refresh_next_expiry(member, lots.spendable_lots(session, member.id))
        with session.no_autoflush:
            card_changed(session, member)
        session.flush()
    return points


def entries_for(session: Session, member: Member, before_id: int | None, limit: int) -> list[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.member_id == member.id)
    if before_id:
        query = query.where(LedgerEntry.id < before_id)
    return list(session.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit)))


def verify_balances(session: Session) -> list[dict]:
    """Every member whose cached balance and pending points differ from the sum of their ledger, or from the
    sum of their open lots."""
    sums = (select(LedgerEntry.member_id, func.coalesce(func.sum(LedgerEntry.points), 0).label("total"))
            .group_by(LedgerEntry.member_id).subquery())
    total = func.coalesce(sums.c.total, 0)
    rows = session.execute(
        select(Member.id, Member.points_balance, Member.pending_points, total)
        .outerjoin(sums, sums.c.member_id == Member.id)
        .where(Member.points_balance + Member.pending_points != total)).all()
    problems = [{"member_id": m, "cached_balance": cached, "pending_points": pending, "ledger_sum": int(summed),
                 "problem": f"cached balance {cached} + pending {pending} != ledger sum {int(summed)}"}
                for m, cached, pending, summed in rows]
    return problems + lots.verify_lots(session)


def _append(session: Session, member: Member, kind: str, points: int, *, spendable: int, amount=None,
            reference=None, reason=None, reward=None, reverses=None, shortfall: int = 0, rule=None, lot=None,
            credit=0) -> LedgerEntry:
    """Write the entry; `spendable` is what it changes of the balance (a pending credit changes none of it)."""
    now = utcnow()
    member.points_balance += spendable
    if member.points_balance < 0:  # the checks above make this unreachable; the invariant is worth a guard
        raise InsufficientPoints("A balance can never go below zero.")
    entry = LedgerEntry(member_id=member.id, merchant_id=member.merchant_id, kind=kind, points=points,
                        balance_after=member.points_balance, amount=amount, reference=reference, reason=reason,
                        reward_id=reward.id if reward else None, reverses_id=reverses.id if reverses else None,
                        shortfall=shortfall, rule=rule, created_at=now, **(lot or {}))
    session.add(entry)
    if credit:
        after_credit(session, member, credit, now)
    if points:
        with session.no_autoflush:  # the member's row is written once, by the flush below, not split in two
            card_changed(session, member)
    session.flush()
    return entry


def _already_reversed(session: Session, entry_id: int) -> int:
    points, shortfall = session.execute(
        select(func.coalesce(func.sum(func.abs(LedgerEntry.points)), 0),
               func.coalesce(func.sum(LedgerEntry.shortfall), 0))
        .where(LedgerEntry.reverses_id == entry_id)).one()
    return int(points) + int(shortfall)


def _check_points(points: int | None, allow_zero: bool = False) -> None:
    if points is None or points < (0 if allow_zero else 1) or points > MAX_POINTS:
        raise InvalidInput("points", f"Must be a whole number from 1 to {MAX_POINTS}.")
