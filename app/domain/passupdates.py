"""What a card shows has changed: bump its version and tag, and queue the delivery, in the caller's transaction.
Workers deliver the outbox after commit, so a push never announces a change that was rolled back.

Last-Modified and If-Modified-Since (docs/architecture.md, "When a card changed"): every change records the
real time it happened, taken after the update-tag counter is locked, so change times follow commit order. HTTP
dates have whole seconds, so when the card's newest version shares its second with the version before it, a
device's If-Modified-Since cannot tell which of the two it holds: it gets the pass again (a harmless download)
instead of a 304 that might hide a change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domain.devices import has_devices
from app.models import Counter, InstanceState, Member, OutboxEvent, Program, utcnow

PASS_UPDATES = "pass_updates"
APPLE_PUSH = "apple_push"
PROGRAM_REFRESH = "program_refresh"
CARD_SETTINGS = "card_settings"


def card_changed(session: Session, member: Member, notify: bool = True) -> None:
    """New version, new update tag, and (unless the card is brand new or has no device) an Apple push in the
    outbox."""
    member.pass_update_tag = next_update_tag(session)
    member.pass_previous_updated_at = member.pass_updated_at if member.pass_version else None
    member.pass_updated_at = utcnow()
    member.pass_version = (member.pass_version or 0) + 1
    if notify and has_devices(session, member.id):  # no device, nobody to push (devices.has_devices: why)
        session.add(OutboxEvent(kind=APPLE_PUSH, member_id=member.id, program_id=member.program_id,
                                payload={"pass_version": member.pass_version}))


def design_changed(session: Session, program: Program) -> None:
    """Branding, terms, tiers or rewards changed: every card of the program is new. One row changes here; a
    worker pushes the devices."""
    program.design_update_tag = next_update_tag(session)
    program.design_previous_updated_at = program.design_updated_at
    program.design_updated_at = utcnow()
    program.design_version = (program.design_version or 0) + 1
    session.add(OutboxEvent(kind=PROGRAM_REFRESH, program_id=program.id,
                            payload={"design_version": program.design_version}))


def card_settings_changed(session: Session, fingerprint: str) -> bool:
    """Settings that go into every card (the web service URL, NFC, personalization...) differ from the ones
    the cards were last built with: a design change of every program, so installed cards are pushed and
    re-downloaded instead of keeping an address nobody answers. Of several processes starting at once, one
    does it (the conditional UPDATE); True when this call did."""
    changed = session.execute(update(InstanceState).where(InstanceState.name == CARD_SETTINGS,
                                                          InstanceState.value != fingerprint)
                              .values(value=fingerprint)).rowcount
    if not changed:
        if session.get(InstanceState, CARD_SETTINGS) is not None:
            return False
        session.add(InstanceState(name=CARD_SETTINGS, value=fingerprint))
        session.flush()  # a concurrent first start fails here on the primary key and leaves it to the other
    for program in session.scalars(select(Program).order_by(Program.id)):
        design_changed(session, program)
    return True


def next_update_tag(session: Session) -> int:
    """Apple's `lastUpdated` tag: a counter, not the clock. The row stays locked until commit, so tags become
    visible in the order they were taken and a device never skips past an uncommitted change."""
    return session.execute(update(Counter).where(Counter.name == PASS_UPDATES)
                           .values(value=Counter.value + 1).returning(Counter.value)).scalar_one()


def last_modified(member: Member, now: datetime) -> datetime:
    """The card's Last-Modified: its newest change, in whole seconds, never later than `now`."""
    return min(_whole_second(_change_times(member)[0]), _whole_second(now))


def unchanged_since(member: Member, if_modified_since: datetime) -> bool:
    """True when the device's copy (labelled `if_modified_since`) is surely the newest version."""
    times = _change_times(member)
    newest = _whole_second(times[0])
    if newest > if_modified_since:
        return False
    return len(times) == 1 or _whole_second(times[1]) < newest


def _change_times(member: Member) -> list[datetime]:
    """When the card's latest versions were made, newest first: its own two latest and its program's."""
    program = member.program
    times = (member.pass_updated_at, member.pass_previous_updated_at, program.design_updated_at,
             program.design_previous_updated_at)
    return sorted(filter(None, times), reverse=True)


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
