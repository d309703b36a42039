"""The points ledger: append-only entries; the member's balance is their sum.

Every operation first locks the member row (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers
with BEGIN IMMEDIATE), so concurrent redeems cannot overspend and balance checks see committed values. A write
route loads its member already locked (`get_member_for_update`: one statement with the program and its tiers);
the lock is then taken once per transaction, not again by each operation."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.domain.errors import Conflict, InsufficientPoints, InvalidInput, NotFound
from app.domain.events import emit
from app.domain.passupdates import card_changed
from app.domain.tiers import retier
from app.models import LedgerEntry, Member, Program, Reward

ROUNDING = {"down": ROUND_DOWN, "nearest": ROUND_HALF_UP, "up": ROUND_UP}  # a program's money-to-points rule
MAX_POINTS = 10_000_000


def points_for_amount(program: Program, amount: Decimal) -> int:
    """Money to points by the program's rule; rounding down unless the program says otherwise."""
    points = (Decimal(amount) * Decimal(program.points_per_unit)).quantize(Decimal(1), ROUNDING[program.rounding])
    return int(points)


_LOCKED = "ledger_locked_members"  # session.info: (the transaction, ids of the members it locked)


def get_member_for_update(session: Session, merchant_id: int, member_id: int) -> Member:
    """The merchant's member, row-locked until commit, with what an operation and its answer read: the program,
    its tiers (one statement: the rows a join adds are a handful) and its rewards (a second one)."""
    member = _lock(session, Member.id == member_id, Member.merchant_id == merchant_id)
    if member is None:
        raise NotFound(f"No member {member_id}.")
    return member


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
                reference: str | None = None, reason: str | None = None, kind: str = "earn") -> LedgerEntry:
    _check_points(points, allow_zero=amount is not None)
    member = lock_member(session, member)
    member.lifetime_points += points
    return _append(session, member, kind, points, amount=amount, reference=reference, reason=reason)


def redeem_points(session: Session, member: Member, points: int | None = None, *, reward: Reward | None = None,
                  reference: str | None = None, reason: str | None = None) -> LedgerEntry:
    """Spend points (or a reward's cost); refused with nothing written when the available balance is short."""
    cost = reward.points_cost if reward is not None else points
    _check_points(cost)
    member = lock_member(session, member)
    if cost > member.available_points:
        raise InsufficientPoints(f"This needs {cost} points; the member has {member.available_points} available.")
    return _append(session, member, "redeem", -cost, reward=reward, reference=reference,
                   reason=reason or (reward.name if reward else None))


def adjust_points(session: Session, member: Member, points: int, *, reason: str,
                  reference: str | None = None) -> LedgerEntry:
    """A manual correction with a mandatory reason; a debit never takes the balance below zero."""
    if points == 0 or abs(points) > MAX_POINTS:
        raise InvalidInput("points", f"Must be a non-zero whole number up to {MAX_POINTS}.")
    member = lock_member(session, member)
    if member.available_points + points < 0:
        raise InsufficientPoints(f"The member has only {member.available_points} points.")
    return _append(session, member, "adjust", points, reference=reference, reason=reason)


def reverse_entry(session: Session, merchant_id: int, entry_id: int, points: int | None = None,
                  reference: str | None = None) -> tuple[LedgerEntry, int]:
    """Undo all or part of an earn, redeem or adjustment. Returns the reversal and the shortfall: points the
    member had already spent, which are reported rather than driving the balance negative."""
    original = session.get(LedgerEntry, entry_id)
    if original is None or original.merchant_id != merchant_id:
        raise NotFound(f"No transaction {entry_id}.")
    if original.kind in ("reversal", "expire"):
        raise Conflict(f"A {original.kind} cannot be reversed.")
    member = _lock(session, Member.id == original.member_id)
    remaining = abs(original.points) - _already_reversed(session, original.id)
    wanted = remaining if points is None else points
    if remaining <= 0:
        raise Conflict(f"Transaction {entry_id} is already fully reversed.")
    if wanted <= 0 or wanted > remaining:
        raise InvalidInput("points", f"Must be between 1 and {remaining}, the part not yet reversed.")
    if original.points > 0:
        taken = min(wanted, max(member.available_points, 0))
        if original.kind == "earn":
            member.lifetime_points -= wanted
            retier(member, may_lower=True)  # the tier these points reached is taken back with them
        entry = _append(session, member, "reversal", -taken, reference=reference, reverses=original,
                        shortfall=wanted - taken)
        return entry, wanted - taken
    return _append(session, member, "reversal", wanted, reference=reference, reverses=original), 0


def entries_for(session: Session, member: Member, before_id: int | None, limit: int) -> list[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.member_id == member.id)
    if before_id:
        query = query.where(LedgerEntry.id < before_id)
    return list(session.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit)))


def verify_balances(session: Session) -> list[dict]:
    """Every member whose cached balance differs from the sum of their ledger."""
    sums = (select(LedgerEntry.member_id, func.coalesce(func.sum(LedgerEntry.points), 0).label("total"))
            .group_by(LedgerEntry.member_id).subquery())
    rows = session.execute(
        select(Member.id, Member.points_balance, func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.member_id == Member.id)
        .where(Member.points_balance != func.coalesce(sums.c.total, 0))).all()
    return [{"member_id": m, "cached_balance": cached, "ledger_sum": int(total)} for m, cached, total in rows]


def _append(session: Session, member: Member, kind: str, points: int, *, amount=None, reference=None,
            reason=None, reward=None, reverses=None, shortfall: int = 0) -> LedgerEntry:
    member.points_balance += points
    if member.points_balance < 0:  # the checks above make this unreachable; the invariant is worth a guard
        raise InsufficientPoints("A balance can never go below zero.")
    entry = LedgerEntry(member_id=member.id, merchant_id=member.merchant_id, kind=kind, points=points,
                        balance_after=member.points_balance, amount=amount, reference=reference, reason=reason,
                        reward_id=reward.id if reward else None, reverses_id=reverses.id if reverses else None,
                        shortfall=shortfall)
    session.add(entry)
    previous_tier = member.tier
    tier_changed = retier(member)
    if points:
        with session.no_autoflush:  # the member's row is written once, by the flush below, not split in two
            card_changed(session, member)
            if tier_changed:
                emit(session, merchant_id=member.merchant_id, member_id=member.id, program_id=member.program_id,
                     type="tier.changed", data={"member_id": member.id, "tier": member.tier.name if member.tier
                                                else None, "previous_tier": previous_tier.name if previous_tier
                                                else None})
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
