"""What a card shows has changed: bump its version and tag, and queue the delivery, in the caller's transaction.
Workers deliver the outbox after commit, so a push never announces a change that was rolled back."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import Counter, Member, OutboxEvent, Program, utcnow

PASS_UPDATES = "pass_updates"
APPLE_PUSH = "apple_push"
PROGRAM_REFRESH = "program_refresh"


def card_changed(session: Session, member: Member, notify: bool = True) -> None:
    """New version, new update tag, and (unless the card is brand new) an Apple push in the outbox."""
    member.pass_version = (member.pass_version or 0) + 1
    member.pass_updated_at = next_modified_time(member.pass_updated_at)
    member.pass_update_tag = next_update_tag(session)
    if notify:
        session.add(OutboxEvent(kind=APPLE_PUSH, member_id=member.id, program_id=member.program_id,
                                payload={"pass_version": member.pass_version}))


def design_changed(session: Session, program: Program) -> None:
    """Branding, terms, tiers or rewards changed: every card of the program is new. One row changes here; a
    worker pushes the devices. The time is later than any member's own, so If-Modified-Since sees it."""
    newest = session.scalar(select(func.max(Member.pass_updated_at)).where(Member.program_id == program.id))
    program.design_version = (program.design_version or 0) + 1
    program.design_updated_at = next_modified_time(max(filter(None, (newest, program.design_updated_at)),
                                                       default=None))
    program.design_update_tag = next_update_tag(session)
    session.add(OutboxEvent(kind=PROGRAM_REFRESH, program_id=program.id,
                            payload={"design_version": program.design_version}))


def next_update_tag(session: Session) -> int:
    """Apple's `lastUpdated` tag: a counter, not the clock. The row stays locked until commit, so tags become
    visible in the order they were taken and a device never skips past an uncommitted change."""
    return session.execute(update(Counter).where(Counter.name == PASS_UPDATES)
                           .values(value=Counter.value + 1).returning(Counter.value)).scalar_one()


def next_modified_time(previous: datetime | None) -> datetime:
    """Whole seconds (HTTP dates have no fractions), and always later than the previous version's, so
    `If-Modified-Since` can never mistake a new version for the one the device already has."""
    now = utcnow().replace(microsecond=0)
    return max(now, previous.replace(microsecond=0) + timedelta(seconds=1)) if previous else now
