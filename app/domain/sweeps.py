"""What the scheduled jobs run (workers/scheduled.py lists them): points expiry, the "points expiring" warning,
pending points becoming spendable, and tier reviews. Each takes the instant it runs *as of*, never reads the
clock, and is idempotent: run twice as of the same instant, the second run finds nothing due.

Each member is changed under its row lock (ledger.lock_member_id), re-read after the lock, so a sweep racing
earns and redemptions on the same members sees their committed lots and loses nothing. The job runner commits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import ledger
from app.domain.earnrules import promotion_label
from app.domain.events import emit
from app.domain.memberships import apply_memberships, members_with_membership_changes, send_renewal_reminders
from app.domain.passupdates import card_changed, design_changed
from app.domain.programs import lock_program
from app.domain.stamps import expire_stamps, members_with_expiring_stamps
from app.domain.tiers import members_due_for_review, review_member
from app.models import LedgerEntry, Member, Program

BATCH = 2000  # members per run; the rest are due again on the next run


def expire_points(session: Session, as_of: datetime) -> dict[str, int]:
    """An `expire` entry for every member with lots whose expiry has come by `as_of`."""
    due = session.scalars(select(LedgerEntry.member_id).where(
        LedgerEntry.lot_remaining > 0, LedgerEntry.pending_until.is_(None), LedgerEntry.expires_at <= as_of)
        .distinct().order_by(LedgerEntry.member_id).limit(BATCH)).all()
    members = points = 0
    for member_id in due:
        entry = ledger.expire_due_lots(session, ledger.lock_member_id(session, member_id), as_of)
        if entry is not None:
            members, points = members + 1, points - entry.points
    return {"members": members, "points": points}


def warn_expiring_points(session: Session, as_of: datetime) -> dict[str, int]:
    """`points.expiring` once per member and expiry date, `expiry_warn_days` ahead of it."""
    warned = 0
    for program_id, warn_days in session.execute(select(Program.id, Program.expiry_warn_days)
                                                 .where(Program.expiry_policy != "never")):
        horizon = as_of + timedelta(days=warn_days)
        due = session.scalars(select(Member.id).where(
            Member.program_id == program_id, Member.next_expiry_at > as_of, Member.next_expiry_at <= horizon,
            (Member.expiry_warned_through.is_(None)) | (Member.expiry_warned_through < Member.next_expiry_at))
            .order_by(Member.id).limit(BATCH)).all()
        for member_id in due:
            warned += _warn(session, ledger.lock_member_id(session, member_id), as_of)
    return {"members": warned}


def _warn(session: Session, member: Member, as_of: datetime) -> int:
    expires_at = member.next_expiry_at
    if expires_at is None or expires_at <= as_of:
        return 0
    if member.expiry_warned_through is not None and member.expiry_warned_through >= expires_at:
        return 0
    member.expiry_warned_through = expires_at
    emit(session, merchant_id=member.merchant_id, type="points.expiring", member_id=member.id,
         program_id=member.program_id,
         data={"member_id": member.id, "points": member.next_expiry_points, "expires_at": expires_at.isoformat()})
    return 1


def release_pending_points(session: Session, as_of: datetime) -> dict[str, int]:
    """Pending lots whose returns window has passed become spendable."""
    due = session.scalars(select(LedgerEntry.member_id).where(LedgerEntry.pending_until <= as_of)
                          .distinct().order_by(LedgerEntry.member_id).limit(BATCH)).all()
    points = sum(ledger.release_pending_lots(session, ledger.lock_member_id(session, member_id), as_of)
                 for member_id in due)
    return {"members": len(due), "points": points}


def review_tiers(session: Session, as_of: datetime) -> dict[str, int]:
    """Reviews due (review date plus grace) and overrides that ended, by `as_of`."""
    changed = 0
    due = members_due_for_review(session, as_of, BATCH)
    for member_id in due:
        member = ledger.lock_member_id(session, member_id)
        if review_member(session, member, as_of):
            changed += 1
            card_changed(session, member)
    session.flush()
    return {"reviewed": len(due), "changed": changed}


def show_promotions(session: Session, as_of: datetime) -> dict[str, int]:
    """A promotion started or ended: the program's cards show the one running now (a design change, so every
    card updates and reverts by itself)."""
    changed = 0
    for program in session.scalars(select(Program).order_by(Program.id)):
        label = promotion_label(program, as_of)
        if label != program.shown_promotion:
            program = lock_program(session, program)
            program.shown_promotion = label
            design_changed(session, program)
            changed += 1
    session.flush()
    return {"programs": changed}


def update_memberships(session: Session, as_of: datetime) -> dict[str, int]:
    """Paid memberships that started or lapsed by `as_of` change the tier shown; reminders before they end."""
    changed = 0
    for member_id in members_with_membership_changes(session, as_of, BATCH):
        changed += apply_memberships(session, ledger.lock_member_id(session, member_id), as_of)
    session.flush()
    return {"changed": changed, "reminded": send_renewal_reminders(session, as_of, BATCH)}


def expire_stamp_cards(session: Session, as_of: datetime) -> dict[str, int]:
    """Stamp cards left longer than their program's `stamps_expire_days` since the last stamp start again."""
    stamps = sum(expire_stamps(session, ledger.lock_member_id(session, member_id), as_of)
                 for member_id in members_with_expiring_stamps(session, as_of, BATCH))
    return {"stamps": stamps}
