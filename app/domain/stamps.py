"""Stamp cards (program `type: "stamps"`): each purchase adds stamps; a full card (`stamps_required`) issues a
voucher for the program's `stamp_reward` and the next card starts with what was left over; milestones on the way
(`stamp_milestones`: 3 stamps, a free cookie) issue theirs. Stamps may expire `stamps_expire_days` after the last
one. A voucher is redeemed once, at the till. Stamps are not points: their entries move no points (`points` 0,
`stamps` n), so the points ledger and its lots are untouched."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import Conflict, InvalidInput
from app.domain.events import emit
from app.domain.ledger import SYSTEM, Actor, lock_member
from app.domain.passupdates import card_changed
from app.models import LedgerEntry, Member, Program, Voucher, utcnow

MAX_STAMPS_PER_EARN = 50
DEFAULT_REWARD = "Stamp card reward"


def add_stamps(session: Session, member: Member, stamps: int, reference: str | None = None,
               by: Actor = SYSTEM) -> LedgerEntry:
    """Add `stamps` to the member's card: a voucher at each milestone passed and at each full card, after
    which the next card starts. Stamps past their expiry go first."""
    program = member.program
    if program.type != "stamps" or not program.stamps_required:
        raise InvalidInput("stamps", "This program does not collect stamps.")
    if not 1 <= stamps <= MAX_STAMPS_PER_EARN:
        raise InvalidInput("stamps", f"Must be 1 to {MAX_STAMPS_PER_EARN}.")
    member, now = lock_member(session, member), utcnow()
    expire_stamps(session, member, now)
    start, required = member.stamps, program.stamps_required
    member.stamps, member.last_stamp_at = (start + stamps) % required, now
    entry = LedgerEntry(member_id=member.id, merchant_id=member.merchant_id, kind="earn", points=0, stamps=stamps,
                        balance_after=member.points_balance, reference=reference, created_at=now,
                        rule=f"stamps: +{stamps}, {member.stamps} of {required} on the card",
                        api_key_id=by.api_key_id, store=by.store)
    session.add(entry)
    rewards = [reward for position in range(start + 1, start + stamps + 1)
               if (reward := _reward_at(program, (position - 1) % required + 1))]
    session.add_all(Voucher(member_id=member.id, merchant_id=member.merchant_id, issued_by=entry, name=reward)
                    for reward in rewards)
    with session.no_autoflush:
        card_changed(session, member)
    session.flush()
    for reward in rewards:
        emit(session, merchant_id=member.merchant_id, type="reward.unlocked", member_id=member.id,
             program_id=member.program_id, data={"member_id": member.id, "reward": reward})
    return entry


def _reward_at(program: Program, stamps_on_card: int) -> str | None:
    """The voucher the card's `stamps_on_card`-th stamp earns: a milestone's, or the full card's."""
    if stamps_on_card == program.stamps_required:
        return program.stamp_reward or DEFAULT_REWARD
    return next((milestone["reward"] for milestone in program.stamp_milestones or ()
                 if milestone["stamps"] == stamps_on_card), None)


def expire_stamps(session: Session, member: Member, as_of: datetime) -> int:
    """In a program whose stamps expire `stamps_expire_days` after the last one, clear a card left that long:
    an `expire` entry records the stamps taken. Returns them (0 when nothing was due)."""
    days = member.program.stamps_expire_days
    if not days or not member.stamps or member.last_stamp_at is None \
            or member.last_stamp_at + timedelta(days=days) > as_of:
        return 0
    expired, member.stamps = member.stamps, 0
    session.add(LedgerEntry(member_id=member.id, merchant_id=member.merchant_id, kind="expire", points=0,
                            stamps=-expired, balance_after=member.points_balance, created_at=utcnow(),
                            rule=f"stamps: {expired} expired {days} days after the last", reason="Stamps expired"))
    with session.no_autoflush:
        card_changed(session, member)
    session.flush()
    return expired


def members_with_expiring_stamps(session: Session, as_of: datetime, limit: int) -> list[int]:
    due = []
    for program_id, days in session.execute(select(Program.id, Program.stamps_expire_days)
                                            .where(Program.stamps_expire_days.is_not(None))):
        due += session.scalars(select(Member.id).where(
            Member.program_id == program_id, Member.stamps > 0,
            Member.last_stamp_at <= as_of - timedelta(days=days)).limit(limit - len(due)))
        if len(due) >= limit:
            break
    return due


def open_vouchers(session: Session, member_id: int) -> list[Voucher]:
    return list(session.scalars(select(Voucher).where(Voucher.member_id == member_id,
                                                      Voucher.redeemed_at.is_(None)).order_by(Voucher.id)))


def redeem_voucher(session: Session, member: Member, voucher_id: int, reference: str | None = None,
                   by: Actor = SYSTEM) -> LedgerEntry:
    """Use a voucher once; a second use is 409."""
    member = lock_member(session, member)
    voucher = session.get(Voucher, voucher_id, with_for_update=True)
    if voucher is None or voucher.member_id != member.id:
        raise InvalidInput("voucher_id", f"No voucher {voucher_id} on this member.")
    if voucher.redeemed_at is not None:
        raise Conflict(f"Voucher {voucher_id} was already redeemed.")
    entry = LedgerEntry(member_id=member.id, merchant_id=member.merchant_id, kind="redeem", points=0,
                        balance_after=member.points_balance, reference=reference, reason=voucher.name,
                        rule=f"voucher #{voucher.id}", created_at=utcnow(), api_key_id=by.api_key_id,
                        store=by.store)
    session.add(entry)
    voucher.redeemed_at, voucher.redeemed_by = utcnow(), entry
    with session.no_autoflush:
        card_changed(session, member)
    session.flush()
    return entry
