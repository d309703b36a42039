"""Stamp cards (program `type: "stamps"`): each purchase adds stamps; a full card (`stamps_required`) issues a
voucher for the program's `stamp_reward` and the next card starts with what was left over. A voucher is redeemed
once, at the till. Stamps are not points: their entries move no points (`points` 0, `stamps` n), so the points
ledger and its lots are untouched."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import Conflict, InvalidInput
from app.domain.events import emit
from app.domain.ledger import lock_member
from app.domain.passupdates import card_changed
from app.models import LedgerEntry, Member, Voucher, utcnow

MAX_STAMPS_PER_EARN = 50
DEFAULT_REWARD = "Stamp card reward"


def add_stamps(session: Session, member: Member, stamps: int, reference: str | None = None) -> LedgerEntry:
    """Add `stamps` to the member's card; every time it fills, a voucher and a fresh card."""
    program = member.program
    if program.type != "stamps" or not program.stamps_required:
        raise InvalidInput("stamps", "This program does not collect stamps.")
    if not 1 <= stamps <= MAX_STAMPS_PER_EARN:
        raise InvalidInput("stamps", f"Must be 1 to {MAX_STAMPS_PER_EARN}.")
    member = lock_member(session, member)
    full, member.stamps = divmod(member.stamps + stamps, program.stamps_required)
    entry = LedgerEntry(member_id=member.id, merchant_id=member.merchant_id, kind="earn", points=0, stamps=stamps,
                        balance_after=member.points_balance, reference=reference, created_at=utcnow(),
                        rule=f"stamps: +{stamps}, {member.stamps} of {program.stamps_required} on the card")
    session.add(entry)
    for _ in range(full):
        voucher = Voucher(member_id=member.id, merchant_id=member.merchant_id, issued_by=entry,
                          name=program.stamp_reward or DEFAULT_REWARD)
        session.add(voucher)
    with session.no_autoflush:
        card_changed(session, member)
    session.flush()
    if full:
        emit(session, merchant_id=member.merchant_id, type="reward.unlocked", member_id=member.id,
             program_id=member.program_id, data={"member_id": member.id, "reward": program.stamp_reward
                                                 or DEFAULT_REWARD, "vouchers": full})
    return entry


def open_vouchers(session: Session, member_id: int) -> list[Voucher]:
    return list(session.scalars(select(Voucher).where(Voucher.member_id == member_id,
                                                      Voucher.redeemed_at.is_(None)).order_by(Voucher.id)))


def redeem_voucher(session: Session, member: Member, voucher_id: int, reference: str | None = None) -> LedgerEntry:
    """Use a voucher once; a second use is 409."""
    member = lock_member(session, member)
    voucher = session.get(Voucher, voucher_id, with_for_update=True)
    if voucher is None or voucher.member_id != member.id:
        raise InvalidInput("voucher_id", f"No voucher {voucher_id} on this member.")
    if voucher.redeemed_at is not None:
        raise Conflict(f"Voucher {voucher_id} was already redeemed.")
    entry = LedgerEntry(member_id=member.id, merchant_id=member.merchant_id, kind="redeem", points=0,
                        balance_after=member.points_balance, reference=reference, reason=voucher.name,
                        rule=f"voucher #{voucher.id}", created_at=utcnow())
    session.add(entry)
    voucher.redeemed_at, voucher.redeemed_by = utcnow(), entry
    with session.no_autoflush:
        card_changed(session, member)
    session.flush()
    return entry
