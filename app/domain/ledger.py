"""The points ledger: append-only entries; the member's balance is their sum.

Every operation first locks the member row (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers
with BEGIN IMMEDIATE), so concurrent redeems cannot overspend and balance checks see committed values. A write
route loads its member already locked (`get_member_for_update`: one statement with the program and its tiers);
the lock is then taken once per transaction, not again by each operation.

Holds (two-phase redeem, app/domain/holds.py) set points aside without spending them: `held_points` grows,
the balance does not, and available points are the balance less held points. Taking a member's lock also
releases their holds past expiry, so a hold stops counting the moment it expires, whoever touches the member
next (the sweep records the release for members nobody touches).

Credits are lots (app/domain/lots.py): a redeem, a negative adjustment and a hold's capture spend the
soonest-expiring lots and record what they took; a hold itself takes no lot. An expiry never takes held points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from app.db import insert_row, update_changed
from app.domain import lots
from app.domain.errors import Conflict, Forbidden, InsufficientPoints, InvalidInput, NotFound
from app.domain.event_data import transaction_event
from app.domain.events import emit
from app.domain.passupdates import UpdateTag, card_changed, keep_update_tag, locked_members, update_tag_columns
from app.domain.program_config import select_member, use_config
from app.domain.tiers import QUALIFYING_KINDS, after_credit, after_reversal
from app.models import Hold, LedgerEntry, Member, Reward, utcnow

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


def get_member_for_update(session: Session, merchant_id: int, member_id: int) -> Member:
    """The merchant's member, row-locked until commit, with what an operation and its answer read: the program's
    configuration (tiers, rewards, rules) from the process's cache (`_lock`)."""
    member = _lock(session, member_id, merchant_id)
    if member is None:
        raise NotFound(f"No member {member_id}.")
    return member


def lock_member_id(session: Session, member_id: int) -> Member | None:
    """A member by id, row-locked until commit (for sweeps, which find members by what is due)."""
    return _lock(session, member_id)


def lock_member(session: Session, member: Member) -> Member:
    """The member with their row locked; a member this transaction already locked is returned as it is."""
    if member.id in locked_members(session):
        return member
    return _lock(session, member.id)


def _lock(session: Session, member_id: int, merchant_id: int | None = None) -> Member | None:
    """One statement: the member's row (locked), its program's config_version and, on PostgreSQL, the card
    change's update tag. The program is then the process's cached configuration at that version
    (app/domain/program_config.py), values rather than ORM rows: no join of the program or its tiers, no
    rewards statement, no ORM loading of either. With `merchant_id`: only that merchant's member, not deleted."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    params = {"member_id": member_id} if merchant_id is None else {"member_id": member_id, "merchant_id": merchant_id}
    row = session.execute(_lock_statement(postgresql, merchant_id is not None), params).one_or_none()
    if row is None:
        return None
    member = use_config(session, row[0], row[1])
    if postgresql:
        keep_update_tag(session, Member, member.id, UpdateTag(*row[2:]))
    locked_members(session).add(member.id)
    if member.held_points:
        release_due_holds(session, member, utcnow())
    return member


@cache
def _lock_statement(postgresql: bool, of_merchant: bool) -> Select:
    """Built once per kind: building a statement and its cache key costs more CPU (~0.4 ms) than executing it
    through SQLAlchemy's compiled cache."""
    where = [Member.id == bindparam("member_id")]
    if of_merchant:
        where += [Member.merchant_id == bindparam("merchant_id"), Member.deleted_at.is_(None)]
    return (select_member(*(update_tag_columns() if postgresql else ())).where(*where).with_for_update(of=Member)
            .execution_options(populate_existing=True))


def earn_points(session: Session, member: Member, points: int, *, amount: Decimal | None = None,
                reference: str | None = None, reason: str | None = None, kind: str = "earn",
                rule: str | None = None, by: Actor = SYSTEM) -> LedgerEntry:
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
                    reference=reference, reason=reason, rule=rule, by=by, now=now,
                    lot=dict(lot_remaining=points, expires_at=lots.expiry_for(program, now),
                             pending_until=pending_until),
                    credit=(amount if program.tier_basis == "spend" else points) if kind in QUALIFYING_KINDS else 0)
    lots.note_new_lot(member, entry)
    emit(session, **transaction_event("points.earned", entry, member))
    return entry


def redeem_points(session: Session, member: Member, points: int | None = None, *, reward: Reward | None = None,
                  reference: str | None = None, reason: str | None = None, by: Actor = SYSTEM) -> LedgerEntry:
    """Spend points (or a reward's cost) from the soonest-expiring lots; refused with nothing written when the
    available balance is short."""
    cost = reward.points_cost if reward is not None else points
    _check_points(cost)
    member = lock_member(session, member)
    _check_available(member, cost)
    entry = _spend(session, member, "redeem", cost, reward=reward, reference=reference,
                   reason=reason or (reward.name if reward else None), by=by)
    emit(session, **transaction_event("points.redeemed", entry, member))
    if reward is not None:
        emit(session, **transaction_event("reward.redeemed", entry, member, reward_name=reward.name))
    return entry


def hold_points(session: Session, member: Member, points: int | None = None, *, reward: Reward | None = None,
                expires_at: datetime, reference: str | None = None, by: Actor = SYSTEM) -> Hold:
    """Set points (or a reward's cost) aside until `expires_at`: a `hold` entry that changes held points, not
    the balance, and takes nothing from the lots (the capture does). Refused with nothing written when the
    available balance is short."""
    cost = reward.points_cost if reward is not None else points
    _check_points(cost)
    member = lock_member(session, member)
    _check_available(member, cost)
    hold = Hold(merchant_id=member.merchant_id, member_id=member.id, reward_id=reward.id if reward else None,
                reward=reward, points=cost, status=HELD, reference=reference, expires_at=expires_at)
    session.add(hold)
    session.flush()
    _append(session, member, "hold", 0, spendable=0, held=cost, hold=hold, reward=reward, reference=reference,
            reason=reward.name if reward else None, by=by)
    return hold


def finish_hold(session: Session, member: Member, hold: Hold, status: str, now: datetime,
                by: Actor = SYSTEM) -> LedgerEntry:
    """Close a held hold of a locked member: `captured` spends its points from the soonest-expiring lots, like a
    redeem (a `capture` entry); `voided` or `expired` gives them back (a `release` entry)."""
    if hold.status != HELD or hold.member_id != member.id:
        raise Conflict(f"Hold {hold.id} is {hold.status}.")
    hold.status, hold.finished_at = status, now
    fields = dict(held=-hold.points, hold=hold, reward=hold.reward, reference=hold.reference,
                  reason=hold.reward.name if hold.reward else None, by=by)
    if status == CAPTURED:
        return _spend(session, member, "capture", hold.points, **fields)
    return _append(session, member, "release", 0, spendable=0, **fields)


def release_due_holds(session: Session, member: Member, now: datetime) -> int:
    """Expire the locked member's holds whose time ran out; how many."""
    due = list(session.scalars(select(Hold).where(Hold.member_id == member.id, Hold.status == HELD,
                                                  Hold.expires_at <= now).order_by(Hold.id)))
    for hold in due:
        finish_hold(session, member, hold, EXPIRED, now)
    return len(due)


def adjust_points(session: Session, member: Member, points: int, *, reason: str,
                  reference: str | None = None, by: Actor = SYSTEM) -> LedgerEntry:
    """A manual correction with a mandatory reason: a credit is a new lot, a debit takes from the lots like a
    spend and never takes the balance below zero."""
    if points == 0 or abs(points) > MAX_POINTS:
        raise InvalidInput("points", f"Must be a non-zero whole number up to {MAX_POINTS}.")
    member = lock_member(session, member)
    if points > 0:
        return earn_points(session, member, points, reference=reference, reason=reason, kind="adjust",
                           rule="manual adjustment", by=by)
    if member.available_points + points < 0:
        raise InsufficientPoints(f"The member has only {member.available_points} points.")
    return _spend(session, member, "adjust", -points, reference=reference, reason=reason, by=by)


def _spend(session: Session, member: Member, kind: str, points: int, **fields) -> LedgerEntry:
    """Take `points` from the member's soonest-expiring lots, recording what came from each."""
    open_lots = lots.spendable_lots(session, member.id)
    entry = _append(session, member, kind, -points, spendable=-points, **fields)
    lots.take(session, entry, open_lots, points)
    lots.refresh_next_expiry(member, open_lots)
    return entry


def reverse_entry(session: Session, merchant_id: int, entry_id: int, points: int | None = None,
                  reference: str | None = None, by: Actor = SYSTEM) -> tuple[LedgerEntry, int]:
    """Undo all or part of a credit or a spend (an earn, redeem, capture or adjustment), by the original entry's
    points (never recomputed at today's rules). A reversed spend gives its lots back with their dates; a reversed
    credit takes from its own lot first (a pending one is simply cancelled), then from the soonest-expiring
    others. Returns the reversal and the shortfall: points the member had already spent, reported rather than
    driving the balance negative."""
    original = session.get(LedgerEntry, entry_id)
    if original is None or original.merchant_id != merchant_id:
        raise NotFound(f"No transaction {entry_id}.")
    _check_may_undo(original, by)
    if original.kind in ("reversal", "expire"):
        raise Conflict(f"A {original.kind} cannot be reversed.")
    if original.kind in ("hold", "release"):
        raise Conflict(f"A {original.kind} moves no points; a hold is released with "
                       f"POST /api/v1/checkout/holds/{original.hold_id}/void.")
    if original.points == 0:
        raise Conflict("A zero-point entry cannot be reversed.")
    member = _lock(session, original.member_id)
    remaining = abs(original.points) - _already_reversed(session, original.id)
    wanted = remaining if points is None else points
    if remaining <= 0:
        raise Conflict(f"Transaction {entry_id} is already fully reversed.")
    if wanted <= 0 or wanted > remaining:
        raise InvalidInput("points", f"Must be between 1 and {remaining}, the part not yet reversed.")
    if original.points < 0:
        entry, shortfall = _reverse_spend(session, member, original, wanted, reference, by), 0
    else:
        entry, shortfall = _reverse_credit(session, member, original, wanted, reference, by)
    emit(session, **transaction_event("points.reversed", entry, member, shortfall=shortfall))
    return entry, shortfall


def _reverse_spend(session: Session, member: Member, spend: LedgerEntry, wanted: int,
                   reference: str | None, by: Actor) -> LedgerEntry:
    entry = _append(session, member, "reversal", wanted, spendable=wanted, reference=reference, reverses=spend,
                    rule=f"reverses #{spend.id}", by=by)
    restored = lots.give_back(session, spend, entry, wanted)
    if restored < wanted:  # a spend from before lots recorded none: the rest comes back as a lot of its own
        entry.lot_remaining = wanted - restored
    lots.refresh_next_expiry(member, lots.spendable_lots(session, member.id))
    return entry


def _reverse_credit(session: Session, member: Member, credit: LedgerEntry, wanted: int,
                    reference: str | None, by: Actor) -> tuple[LedgerEntry, int]:
    if credit.kind in QUALIFYING_KINDS:
        member.lifetime_points -= wanted
    rule = f"reverses #{credit.id}"
    if credit.pending_until is not None:  # not spendable yet: cancelled, nothing was spent
        taken = min(wanted, credit.lot_remaining or 0)
        member.pending_points -= taken
        entry = _append(session, member, "reversal", -taken, spendable=0, reference=reference, reverses=credit,
                        shortfall=wanted - taken, rule=rule, by=by)
        lots.take(session, entry, [credit], taken)
    else:
        open_lots = lots.spendable_lots(session, member.id)
        taken = min(wanted, max(member.available_points, 0))
        entry = _append(session, member, "reversal", -taken, spendable=-taken, reference=reference,
                        reverses=credit, shortfall=wanted - taken, rule=rule, by=by)
        lots.take(session, entry, sorted(open_lots, key=lambda lot: lot is not credit), taken)
        lots.refresh_next_expiry(member, open_lots)
    if credit.kind in QUALIFYING_KINDS:
        after_reversal(session, member, utcnow())  # the tier these points reached is taken back with them
    return entry, wanted - taken


def _check_may_undo(original: LedgerEntry, by: Actor) -> None:
    """A till's key undoes a mistake it just made; anything else is the owner's call (an admin key)."""
    if by.admin:
        return
    if original.api_key_id != by.api_key_id or original.created_at < utcnow() - UNDO_WINDOW:
        raise Forbidden(f"A till (pos) key may reverse only entries it made itself in the last "
                        f"{UNDO_WINDOW.seconds} seconds; reversing this one needs an admin key.")


def expire_due_lots(session: Session, member: Member, as_of: datetime) -> LedgerEntry | None:
    """Expire what is left of the member's lots whose date has come by `as_of`: one `expire` entry taking them,
    and the card updates. None when nothing was due (so running it twice changes nothing).

    Held points are never expired: the expiry stops at what holds keep (balance never below held points), so
    a hold placed before the date still captures. The capture then spends those soonest-expiring lots first;
    whatever a voided or expired hold gives back expires on the next sweep."""
    member = lock_member(session, member)
    open_lots = lots.spendable_lots(session, member.id)
    due = [lot for lot in open_lots if lot.expires_at is not None and lot.expires_at <= as_of]
    points = min(sum(lot.lot_remaining for lot in due), max(member.available_points, 0))
    if not points:
        return None
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
    """Every member whose cached balance and pending points differ from the sum of their ledger, whose held
    points differ from the sum of its holds, or whose balance differs from the sum of their open lots."""
    sums = (select(LedgerEntry.member_id, func.coalesce(func.sum(LedgerEntry.points), 0).label("total"),
                   func.coalesce(func.sum(LedgerEntry.held), 0).label("held"))
            .group_by(LedgerEntry.member_id).subquery())
    total, held = func.coalesce(sums.c.total, 0), func.coalesce(sums.c.held, 0)
    rows = session.execute(
        select(Member.id, Member.points_balance, Member.pending_points, total, Member.held_points, held)
        .outerjoin(sums, sums.c.member_id == Member.id)
        .where((Member.points_balance + Member.pending_points != total) | (Member.held_points != held))).all()
    problems = [{"member_id": m, "cached_balance": cached, "pending_points": pending, "ledger_sum": int(summed),
                 "cached_held": cached_held, "ledger_held": int(summed_held),
                 "problem": f"cached balance {cached} + pending {pending} != ledger sum {int(summed)}"
                 if cached + pending != summed else
                 f"cached held points {cached_held} != ledger sum {int(summed_held)}"}
                for m, cached, pending, summed, cached_held, summed_held in rows]
    return problems + lots.verify_lots(session)


def _check_available(member: Member, cost: int) -> None:
    if cost > member.available_points:
        raise InsufficientPoints(f"This needs {cost} points; the member has {member.available_points} available.")


def _append(session: Session, member: Member, kind: str, points: int, *, spendable: int, amount=None,
            reference=None, reason=None, reward=None, reverses=None, shortfall: int = 0, held: int = 0, hold=None,
            rule=None, lot=None, credit=0, by: Actor = SYSTEM, now: datetime | None = None) -> LedgerEntry:
    """Write the entry; `spendable` is what it changes of the balance (a pending credit changes none of it),
    `held` what it changes of held points. The entry and the member's new state are written with one INSERT
    and one UPDATE (`insert_row`, `update_changed`: the unit of work's flush costs more CPU than the
    statements); a qualifying `credit` moves the tier (emitting tier.changed) once the entry is stored."""
    now = now or utcnow()
    member.points_balance += spendable
    member.held_points += held
    if member.points_balance < 0:  # the checks above make this unreachable; the invariant is worth a guard
        raise InsufficientPoints("A balance can never go below zero.")
    if points or held:  # the card shows available points: a hold changes them too
        with session.no_autoflush:  # the member's row is written once, below, not split in two
            card_changed(session, member)
    if any(other is not member for other in session.dirty):
        session.flush()  # other changes (a hold's status) are written now: a later populate_existing read keeps them
    entry = insert_row(session, LedgerEntry(
        member_id=member.id, merchant_id=member.merchant_id, kind=kind, points=points,
        balance_after=member.points_balance, amount=amount, reference=reference, reason=reason,
        reward_id=reward.id if reward else None, reverses_id=reverses.id if reverses else None, shortfall=shortfall,
        held=held, hold_id=hold.id if hold else None, api_key_id=by.api_key_id, store=by.store, rule=rule,
        created_at=now, **(lot or {})))
    if credit:
        with session.no_autoflush:  # the window's sum reads the entry just inserted; the member is written below
            after_credit(session, member, credit, now)
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
