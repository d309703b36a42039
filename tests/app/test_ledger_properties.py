"""Property-based: any sequence of earns, redemptions, adjustments, reversals, expiry, pending release and checkout
holds (placed, captured, voided), with a clock that moves on, keeps the books: the balance is the sum of the open
lots and never below the points held, every point taken from a lot is recorded against the entry that took it,
spends (captures too) take the soonest-expiring lots first, and `ledger verify` stays clean."""

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.domain import ledger, members
from app.domain.errors import DomainError
from app.models import Hold, LedgerEntry, LotConsumption, Member, Program
from app.services import services
from tests.factories import make_merchant, make_program

START = datetime(2027, 1, 30, 9, tzinfo=timezone.utc)

operations = st.lists(st.one_of(
    st.tuples(st.just("earn"), st.integers(1, 200)),
    st.tuples(st.just("earn"), st.integers(1, 200)),
    st.tuples(st.just("advance"), st.integers(1, 4)),
    st.tuples(st.just("redeem"), st.integers(1, 300)),
    st.tuples(st.just("adjust"), st.integers(-150, 150).filter(bool)),
    st.tuples(st.just("reverse"), st.integers(0, 30), st.integers(0, 100)),
    st.tuples(st.just("advance"), st.integers(0, 12)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("release")),
    st.tuples(st.just("hold"), st.integers(1, 200)),
    st.tuples(st.just("capture"), st.integers(0, 5)),
    st.tuples(st.just("void"), st.integers(0, 5)),
), max_size=30)


@pytest.fixture(scope="module")
def programs(app):
    """A program whose points expire 10 days after each earn, and one that also holds them 3 days."""
    client = app.test_client()
    _, key = make_merchant(app)
    tiers = [{"name": "Bronze", "threshold": 0}, {"name": "Gold", "threshold": 300}]
    return [make_program(client, key, tiers=tiers, expiry={"policy": "rolling_days", "days": 10}, **extra)["id"]
            for extra in ({}, {"pending_days": 3})]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations, pending=st.booleans())
@example(steps=[("earn", 100), ("hold", 80), ("advance", 11), ("expire",), ("capture", 0)], pending=False)
def test_any_sequence_keeps_the_books(app, programs, steps, pending):
    with app.app_context(), time_machine.travel(START, tick=False) as clock:
        session = services(app).sessions()
        try:
            program = session.get(Program, programs[pending])
            member_id = members.enroll_member(session, program, {"name": "Prop"}).id
            session.commit()
            for step in steps:
                if step[0] == "advance":
                    clock.shift(timedelta(days=step[1]))
                    continue
                _apply(session, member_id, step)
                _check(session, member_id)
        finally:
            session.rollback()
            session.close()


def _apply(session, member_id: int, step: tuple) -> None:
    """One request: it commits, or is refused and writes nothing."""
    now = datetime.now(timezone.utc)
    member = ledger.lock_member_id(session, member_id)
    try:
        if step[0] == "earn":
            ledger.earn_points(session, member, step[1])
        elif step[0] == "redeem":
            entry = ledger.redeem_points(session, member, step[1])
            session.flush()
            _check_soonest_first(session, entry)
        elif step[0] == "adjust":
            ledger.adjust_points(session, member, step[1], reason="property")
        elif step[0] == "reverse":
            entries = session.scalars(select(LedgerEntry.id).where(LedgerEntry.member_id == member_id)
                                      .order_by(LedgerEntry.id)).all()
            if entries:
                original = session.get(LedgerEntry, entries[step[1] % len(entries)])
                part = max(1, abs(original.points) * step[2] // 100) if step[2] else None
                ledger.reverse_entry(session, original.merchant_id, original.id, part)
        elif step[0] == "expire":
            ledger.expire_due_lots(session, member, now)
            session.flush()
            survived = sum(lot.lot_remaining for lot in _lots(session, member_id) if lot.pending_until is None
                           and lot.expires_at is not None and lot.expires_at <= now)
            assert survived <= member.held_points, "a due lot no hold keeps survived the sweep"
        elif step[0] == "release":
            ledger.release_pending_lots(session, member, now)
        elif step[0] == "hold":
            ledger.hold_points(session, member, step[1], expires_at=now + timedelta(days=12))  # outlives some lots
        elif step[0] in ("capture", "void"):
            held = session.scalars(select(Hold).where(Hold.member_id == member_id, Hold.status == ledger.HELD)
                                   .order_by(Hold.id)).all()
            if held:
                status = ledger.CAPTURED if step[0] == "capture" else ledger.VOIDED
                entry = ledger.finish_hold(session, member, held[step[1] % len(held)], status, now)
                if status == ledger.CAPTURED:
                    session.flush()
                    _check_soonest_first(session, entry)
        session.commit()
    except DomainError:
        session.rollback()


def _lots(session, member_id: int) -> list[LedgerEntry]:
    return list(session.scalars(select(LedgerEntry).where(LedgerEntry.member_id == member_id,
                                                          LedgerEntry.lot_remaining > 0)))


def _check_soonest_first(session, spend: LedgerEntry) -> None:
    """No lot left open expires before the latest-expiring lot this spend took from."""
    def order(lot):
        return (lot.expires_at is None, lot.expires_at or START)
    taken = [session.get(LedgerEntry, lot_id) for lot_id in session.scalars(
        select(LotConsumption.lot_id).where(LotConsumption.entry_id == spend.id))]
    latest = max(map(order, taken))
    left = [lot for lot in _lots(session, spend.member_id) if lot.pending_until is None and lot not in taken]
    assert all(order(lot) >= latest for lot in left)


def _check(session, member_id: int) -> None:
    session.expire_all()
    member = session.get(Member, member_id)
    assert member.points_balance >= member.held_points >= 0 and member.pending_points >= 0
    assert not [row for row in ledger.verify_balances(session) if row["member_id"] == member_id]
    entries = session.scalars(select(LedgerEntry).where(LedgerEntry.member_id == member_id)).all()
    taken = dict(session.execute(select(LotConsumption.entry_id, func.sum(LotConsumption.points))
                                 .join(LedgerEntry, LedgerEntry.id == LotConsumption.entry_id)
                                 .where(LedgerEntry.member_id == member_id).group_by(LotConsumption.entry_id)).all())
    given_back = dict(session.execute(select(LotConsumption.lot_id, func.sum(LotConsumption.points))
                                      .join(LedgerEntry, LedgerEntry.id == LotConsumption.lot_id)
                                      .where(LedgerEntry.member_id == member_id)
                                      .group_by(LotConsumption.lot_id)).all())
    for entry in entries:
        if entry.points < 0 or entry.kind == "reversal":  # every point a debit moved came from (or went to) a lot
            assert taken.get(entry.id, 0) == -entry.points, (entry.kind, entry.points, taken.get(entry.id))
        elif entry.points > 0:  # every point of a credit is still in its lot or was taken by a recorded entry
            assert entry.lot_remaining + given_back.get(entry.id, 0) == entry.points, entry.kind
    spendable = sum(lot.lot_remaining for lot in entries if lot.lot_remaining and lot.pending_until is None)
    assert spendable == member.points_balance
    assert member.next_expiry_points == sum(
        lot.lot_remaining for lot in entries if lot.lot_remaining and lot.pending_until is None
        and lot.expires_at is not None and lot.expires_at == member.next_expiry_at)
