"""The points ledger: append-only entries; the member's balance is their sum.

Every operation first locks the member row (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers
with BEGIN IMMEDIATE), so concurrent redeems cannot overspend and balance checks see committed values. A write
route loads its member already locked (`get_member_for_update`: one statement with the program and its tiers);
the lock is then taken once per transaction, not again by each operation.

Holds (two-phase redeem, app/domain/holds.py) set points aside without spending them: `held_points` grows,
the balance does not, and available points are the balance less held points. Taking a member's lock also
releases their holds past expiry, so a hold stops counting the moment it expires, whoever touches the member
next (the sweep records the release for members nobody touches)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.db import insert_row, update_changed
from app.domain.errors import Conflict, Forbidden, InsufficientPoints, InvalidInput, NotFound
from app.domain.event_data import transaction_event
from app.domain.events import emit
from app.domain.passupdates import UpdateTag, card_changed, keep_update_tag, update_tag_columns
from app.domain.tiers import retier
from app.models import Hold, LedgerEntry, Member, Program, Reward, utcnow

ROUNDING = {"down": ROUND_DOWN, "nearest": ROUND_HALF_UP, "up": ROUND_UP}  # a program's money-to-points rule
MAX_POINTS = 10_000_000
UNDO_WINDOW = timedelta(seconds=60)  # how long a till may reverse an entry it made itself
HELD, CAPTURED, VOIDED, EXPIRED = "held", "captured", "voided", "expired"  # a hold's status


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: the API key and the store its till is in (recorded on every entry), and whether
    it is an admin key (a till's key may only undo what it did itself in the last minute)."""
    api_key_id: int | None = None
    store: str | None = None
    admin: bool = True


SYSTEM = Actor()  # the sweep, a command line


def points_for_amount(program: Program, amount: Decimal) -> int:
    """Money to points by the program's rule; rounding down unless the program says otherwise."""
    points = (Decimal(amount) * Decimal(program.points_per_unit)).quantize(Decimal(1), ROUNDING[program.rounding])
    return int(points)


_LOCKED = "ledger_locked_members"  # session.info: (the transaction, ids of the members it locked)


def get_member_for_update(session: Session, merchant_id: int, member_id: int) -> Member:
    """The merchant's member, row-locked until commit, with what an operation and its answer read: the program,
    its tiers (one statement: the rows a join adds are a handful) and its rewards (a second one)."""
    member = _lock(session, Member.id == member_id, Member.merchant_id == merchant_id, Member.deleted_at.is_(None))
    if member is None:
        raise NotFound(f"No member {member_id}.")
    return member


def lock_member(session: Session, member: Member) -> Member:
    """The member with their row locked; a member this transaction already locked is returned as it is."""
    if member.id in _locked_ids(session):
        return member
    return _lock(session, Member.id == member.id)


def _lock(session: Session, *where) -> Member | None:
    """On PostgreSQL the same statement returns the card change's update tag (one round trip fewer)."""
    tag_columns = update_tag_columns() if session.get_bind().dialect.name == "postgresql" else ()
    row = session.execute(
        select(Member, *tag_columns).where(*where).with_for_update(of=Member)
        .options(joinedload(Member.program).joinedload(Program.tiers),
                 joinedload(Member.program).selectinload(Program.rewards))
        .execution_options(populate_existing=True)).unique().one_or_none()
    if row is None:
        return None
    member = row[0]
    if tag_columns:
        keep_update_tag(session, Member, member.id, UpdateTag(*row[1:]))
    _locked_ids(session).add(member.id)
    if member.held_points:
        release_due_holds(session, member, utcnow())
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
                by: Actor = SYSTEM) -> LedgerEntry:
    _check_points(points, allow_zero=amount is not None)
    member = lock_member(session, member)
    member.lifetime_points += points
    entry = _append(session, member, kind, points, amount=amount, reference=reference, reason=reason, by=by)
    emit(session, **transaction_event("points.earned", entry, member))
    return entry


def redeem_points(session: Session, member: Member, points: int | None = None, *, reward: Reward | None = None,
                  reference: str | None = None, reason: str | None = None, by: Actor = SYSTEM) -> LedgerEntry:
    """Spend points (or a reward's cost); refused with nothing written when the available balance is short."""
    cost = reward.points_cost if reward is not None else points
    _check_points(cost)
    member = lock_member(session, member)
    _check_available(member, cost)
    entry = _append(session, member, "redeem", -cost, reward=reward, reference=reference,
                    reason=reason or (reward.name if reward else None), by=by)
    emit(session, **transaction_event("points.redeemed", entry, member))
    if reward is not None:
        emit(session, **transaction_event("reward.redeemed", entry, member, reward_name=reward.name))
    return entry


def hold_points(session: Session, member: Member, points: int | None = None, *, reward: Reward | None = None,
                expires_at: datetime, reference: str | None = None, by: Actor = SYSTEM) -> Hold:
    """Set points (or a reward's cost) aside until `expires_at`: a `hold` entry that changes held points, not
    the balance. Refused with nothing written when the available balance is short."""
    cost = reward.points_cost if reward is not None else points
    _check_points(cost)
    member = lock_member(session, member)
    _check_available(member, cost)
    hold = Hold(merchant_id=member.merchant_id, member_id=member.id, reward_id=reward.id if reward else None,
                reward=reward, points=cost, status=HELD, reference=reference, expires_at=expires_at)
    session.add(hold)
    session.flush()
    _append(session, member, "hold", 0, held=cost, hold=hold, reward=reward, reference=reference,
            reason=reward.name if reward else None, by=by)
    return hold


def finish_hold(session: Session, member: Member, hold: Hold, status: str, now: datetime,
                by: Actor = SYSTEM) -> LedgerEntry:
    """Close a held hold of a locked member: `captured` spends its points (a `capture` entry), `voided` or
    `expired` gives them back (a `release` entry)."""
    if hold.status != HELD or hold.member_id != member.id:
        raise Conflict(f"Hold {hold.id} is {hold.status}.")
    hold.status, hold.finished_at = status, now
    spent = -hold.points if status == CAPTURED else 0
    return _append(session, member, "capture" if status == CAPTURED else "release", spent, held=-hold.points,
                   hold=hold, reward=hold.reward, reference=hold.reference,
                   reason=hold.reward.name if hold.reward else None, by=by)


def release_due_holds(session: Session, member: Member, now: datetime) -> int:
    """Expire the locked member's holds whose time ran out; how many."""
    due = list(session.scalars(select(Hold).where(Hold.member_id == member.id, Hold.status == HELD,
                                                  Hold.expires_at <= now).order_by(Hold.id)))
    for hold in due:
        finish_hold(session, member, hold, EXPIRED, now)
    return len(due)


def adjust_points(session: Session, member: Member, points: int, *, reason: str,
                  reference: str | None = None, by: Actor = SYSTEM) -> LedgerEntry:
    """A manual correction with a mandatory reason; a debit never takes the balance below zero."""
    if points == 0 or abs(points) > MAX_POINTS:
        raise InvalidInput("points", f"Must be a non-zero whole number up to {MAX_POINTS}.")
    member = lock_member(session, member)
    if member.available_points + points < 0:
        raise InsufficientPoints(f"The member has only {member.available_points} points.")
    return _append(session, member, "adjust", points, reference=reference, reason=reason, by=by)


def reverse_entry(session: Session, merchant_id: int, entry_id: int, points: int | None = None,
                  reference: str | None = None, by: Actor = SYSTEM) -> tuple[LedgerEntry, int]:
    """Undo all or part of an earn, redeem, capture or adjustment. Returns the reversal and the shortfall:
    points the member had already spent, which are reported rather than driving the balance negative."""
    original = session.get(LedgerEntry, entry_id)
    if original is None or original.merchant_id != merchant_id:
        raise NotFound(f"No transaction {entry_id}.")
    _check_may_undo(original, by)
    if original.kind in ("reversal", "expire"):
        raise Conflict(f"A {original.kind} cannot be reversed.")
    if original.kind in ("hold", "release"):
        raise Conflict(f"A {original.kind} moves no points; a hold is released with "
                       f"POST /api/v1/checkout/holds/{original.hold_id}/void.")
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
                        shortfall=wanted - taken, by=by)
        emit(session, **transaction_event("points.reversed", entry, member, shortfall=wanted - taken))
        return entry, wanted - taken
    entry = _append(session, member, "reversal", wanted, reference=reference, reverses=original, by=by)
    emit(session, **transaction_event("points.reversed", entry, member, shortfall=0))
    return entry, 0


def _check_may_undo(original: LedgerEntry, by: Actor) -> None:
    """A till's key undoes a mistake it just made; anything else is the owner's call (an admin key)."""
    if by.admin:
        return
    if original.api_key_id != by.api_key_id or original.created_at < utcnow() - UNDO_WINDOW:
        raise Forbidden(f"A till (pos) key may reverse only entries it made itself in the last "
                        f"{UNDO_WINDOW.seconds} seconds; reversing this one needs an admin key.")


def entries_for(session: Session, member: Member, before_id: int | None, limit: int) -> list[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.member_id == member.id)
    if before_id:
        query = query.where(LedgerEntry.id < before_id)
    return list(session.scalars(query.order_by(LedgerEntry.id.desc()).limit(limit)))


def verify_balances(session: Session) -> list[dict]:
    """Every member whose cached balance or held points differ from the sums of their ledger."""
    sums = (select(LedgerEntry.member_id, func.coalesce(func.sum(LedgerEntry.points), 0).label("total"),
                   func.coalesce(func.sum(LedgerEntry.held), 0).label("held"))
            .group_by(LedgerEntry.member_id).subquery())
    total, held = func.coalesce(sums.c.total, 0), func.coalesce(sums.c.held, 0)
    rows = session.execute(
        select(Member.id, Member.points_balance, total, Member.held_points, held)
        .outerjoin(sums, sums.c.member_id == Member.id)
        .where((Member.points_balance != total) | (Member.held_points != held))).all()
    return [{"member_id": m, "cached_balance": cached, "ledger_sum": int(summed), "cached_held": cached_held,
             "ledger_held": int(summed_held)} for m, cached, summed, cached_held, summed_held in rows]


def _check_available(member: Member, cost: int) -> None:
    if cost > member.available_points:
        raise InsufficientPoints(f"This needs {cost} points; the member has {member.available_points} available.")


def _append(session: Session, member: Member, kind: str, points: int, *, amount=None, reference=None,
            reason=None, reward=None, reverses=None, shortfall: int = 0, held: int = 0, hold=None,
            by: Actor = SYSTEM) -> LedgerEntry:
    """The entry and the member's new state, written at once with one INSERT and one UPDATE (`insert_row`,
    `update_changed`: the unit of work's flush costs more CPU than the statements)."""
    member.points_balance += points
    member.held_points += held
    if member.points_balance < 0:  # the checks above make this unreachable; the invariant is worth a guard
        raise InsufficientPoints("A balance can never go below zero.")
    retier(member)  # emits tier.changed when the tier moves
    if points or held:  # the card shows available points: a hold changes them too
        with session.no_autoflush:  # the member's row is written once, below, not split in two
            card_changed(session, member)
    if any(other is not member for other in session.dirty):
        session.flush()  # other changes (a hold's status) are written now: a later populate_existing read keeps them
    entry = insert_row(session, LedgerEntry(
        member_id=member.id, merchant_id=member.merchant_id, kind=kind, points=points,
        balance_after=member.points_balance, amount=amount, reference=reference, reason=reason,
        reward_id=reward.id if reward else None, reverses_id=reverses.id if reverses else None, shortfall=shortfall,
        held=held, hold_id=hold.id if hold else None, api_key_id=by.api_key_id, store=by.store))
    update_changed(session, member)
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
