"""Devices that asked for a card's updates (Apple's deviceLibraryIdentifier + push token), and what they tell us.
Apple's PassKit web service calls these; they never commit."""

from __future__ import annotations

import logging
import re

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from app.domain.event_data import member_event
from app.domain.events import emit
from app.domain.passupdates import update_tag_horizon
from app.logs import printable
from app.models import MAX_PUSH_TOKEN_LENGTH, DeviceLog, DeviceRegistration, Member, Program
from app.untrusted import scrub

log = logging.getLogger(__name__)
MAX_LOG_LINES, MAX_LOG_LINE = 50, 1000
# Apple: the device token is hex ("32 bytes today", its length "may vary"); 8 bytes is a sane floor.
_PUSH_TOKEN = re.compile(rf"[0-9A-Fa-f]{{16,{MAX_PUSH_TOKEN_LENGTH}}}")


def is_push_token(value: object) -> bool:
    """True for a string APNs could have issued: hex, 16 to MAX_PUSH_TOKEN_LENGTH characters. One rule for
    the web service that accepts a token and the APNs sender that uses it, so a token accepted at
    registration is a token that can be pushed."""
    return isinstance(value, str) and _PUSH_TOKEN.fullmatch(value) is not None


def register_device(session: Session, member: Member, device_id: str, push_token: str, max_devices: int) -> bool:
    """True for a new registration; an existing one gets the new push token. A pass keeps at most `max_devices`
    registrations (a person has a few devices; every one costs a push on each change): a new device beyond
    that replaces the oldest."""
    existing = session.scalar(select(DeviceRegistration).where(
        DeviceRegistration.device_library_id == device_id, DeviceRegistration.member_id == member.id))
    if existing is not None:
        existing.push_token = push_token
        return False
    oldest = session.scalars(select(DeviceRegistration.id).where(DeviceRegistration.member_id == member.id)
                             .order_by(DeviceRegistration.id.desc()).offset(max_devices - 1)).all()
    first = not _has_registrations(session, member)
    if oldest:
        session.execute(delete(DeviceRegistration).where(DeviceRegistration.id.in_(oldest)))
    session.add(DeviceRegistration(device_library_id=device_id, push_token=push_token, member_id=member.id))
    if first:  # approximate: Wallet also unregisters when automatic updates are turned off, and registers again
        emit(session, **member_event("pass.installed", member, wallet="apple"))
    session.flush()
    recount_devices(session, [member.id])
    return True


def unregister_device(session: Session, member: Member, device_id: str) -> None:
    removed = session.execute(delete(DeviceRegistration).where(DeviceRegistration.device_library_id == device_id,
                                                               DeviceRegistration.member_id == member.id)).rowcount
    if removed and not _has_registrations(session, member):  # approximate, as for pass.installed
        emit(session, **member_event("pass.removed", member, wallet="apple"))
    if removed:
        recount_devices(session, [member.id])


def forget_push_tokens(session: Session, tokens: set[str]) -> None:
    """Registrations whose push token Apple called unregistered: deleted, and their cards' counts kept true."""
    members = session.scalars(select(DeviceRegistration.member_id).distinct()
                              .where(DeviceRegistration.push_token.in_(tokens))).all()
    session.execute(delete(DeviceRegistration).where(DeviceRegistration.push_token.in_(tokens)))
    recount_devices(session, members)


def recount_devices(session: Session, member_ids: list[int]) -> None:
    """`members.apple_devices` from the rows, in one UPDATE: a count that cannot drift, whoever changed them."""
    if member_ids:
        count = select(func.count()).where(DeviceRegistration.member_id == Member.id).scalar_subquery()
        session.execute(update(Member).where(Member.id.in_(member_ids))
                        .values(apple_devices=count, apple_ever_installed=or_(Member.apple_ever_installed, count > 0))
                        .execution_options(synchronize_session="fetch"))


def _has_registrations(session: Session, member: Member) -> bool:
    return session.scalar(select(exists().where(DeviceRegistration.member_id == member.id)))


def updated_serials(session: Session, device_id: str, since_tag: int) -> tuple[list[str], int] | None:
    """The serials of this device's passes changed after `since_tag` (its own or its program's tag), and the tag
    to ask with next time; None when nothing changed.

    That tag is the newest listed, but never above the horizon (`update_tag_horizon`, taken first): a change
    with a lower tag still in flight would be skipped for good. Passes listed above the horizon are listed
    again next time (the device gets a 304); nothing is ever skipped."""
    horizon = update_tag_horizon(session)
    rows = session.execute(
        select(Member.serial_number, Member.pass_update_tag, Program.design_update_tag)
        .join(DeviceRegistration, DeviceRegistration.member_id == Member.id)
        .join(Program, Program.id == Member.program_id)
        .where(DeviceRegistration.device_library_id == device_id,
               or_(Member.pass_update_tag > since_tag, Program.design_update_tag > since_tag))).all()
    if not rows:
        return None
    newest = max(max(card, design) for _, card, design in rows)
    return [serial for serial, _, _ in rows], newest if horizon is None else min(newest, horizon)


def record_device_logs(session: Session, lines: list, max_stored: int) -> None:
    """Devices report why an update failed; anyone may post (Apple sends no credentials), so each line is
    escaped onto one line (control characters, NUL included, as Python escapes; lone surrogates, which the
    database cannot store, as U+FFFD) before it reaches the log or the table, and the table keeps only the
    newest `max_stored`."""
    for line in lines[:MAX_LOG_LINES]:
        message = scrub(printable(str(line)))[:MAX_LOG_LINE]
        log.warning("device log: %s", message)
        session.add(DeviceLog(message=message))
    session.flush()
    drop_oldest_device_logs(session, max_stored)


def drop_oldest_device_logs(session: Session, keep: int) -> int:
    """Delete all but the newest `keep` device log lines; returns how many went."""
    newest_dropped = session.scalar(select(DeviceLog.id).order_by(DeviceLog.id.desc()).offset(keep).limit(1))
    if newest_dropped is None:
        return 0
    return session.execute(delete(DeviceLog).where(DeviceLog.id <= newest_dropped)).rowcount
