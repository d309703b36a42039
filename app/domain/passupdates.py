"""What a card shows has changed: bump its version and tag, and queue the delivery, in the caller's transaction.
Workers deliver the outbox after commit, so a push never announces a change that was rolled back.

Update tags (docs/architecture.md, "Update tags take no instance-wide lock"): on PostgreSQL a change's tag is
`update_tag_base` plus the id of the transaction that made it, taken with no shared lock; the serials list
answers a `lastUpdated` no higher than the snapshot's horizon (every transaction below it has finished), so a
device never skips a change still in flight. SQLite serialises writers, so there the tag is simply the next
value of the `pass_updates` counter.

Last-Modified and If-Modified-Since ("When a card changed"): every change records the real time it happened,
taken under the changed row's lock, and `seen`, the highest tag surely finished before that time. HTTP dates
have whole seconds, so when the card's newest version shares its second with the version before it, a device's
If-Modified-Since cannot tell which of the two it holds: it gets the pass again (a harmless download) instead of
a 304 that might hide a change. The same holds when the card's other row (program or member) was changed by a
transaction that had not surely finished when the newest version was made: it may have committed after the
device's download."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import BigInteger, bindparam, func, literal_column, select, update
from sqlalchemy.orm import Session

from app.db import transaction_scoped
from app.domain.googlewallet import class_changed, object_changed
from app.models import Counter, DeviceRegistration, GoogleObject, InstanceState, Member, OutboxEvent, Program, utcnow

PASS_UPDATES = "pass_updates"  # SQLite: the tag counter
UPDATE_TAG_BASE = "update_tag_base"  # PostgreSQL: tags are this plus a transaction id (migration 0008)
APPLE_PUSH = "apple_push"
PROGRAM_REFRESH = "program_refresh"
CARD_SETTINGS = "card_settings"
_TAGS_TAKEN = "passupdates_tags_taken"  # session.info: (the transaction, {(table, row id): UpdateTag})


def card_changed(session: Session, member: Member, notify: bool = True,
                 holders: tuple[bool, bool] | None = None) -> None:
    """New version, new update tag, and (unless the card is brand new) an Apple push in the outbox when it has a
    device, a Google Wallet update when it has a Google object: no work for nobody. `holders` is what
    `card_holders` answers, from a caller that read it for many locked members at once (a campaign batch)."""
    member.pass_update_tag, member.pass_update_seen = next_update_tag(session, Member, member.id)
    member.pass_previous_updated_at = member.pass_updated_at if member.pass_version else None
    member.pass_updated_at = _later_than(member.pass_updated_at)
    member.pass_version = (member.pass_version or 0) + 1
    if not notify:
        return
    if holders is None and member.id in locked_members(session):
        holders = member.apple_devices > 0, member.google_object  # read under the lock (locked_members)
    has_devices, has_google_object = holders if holders is not None else _card_holders(session, member.id)
    if has_devices:  # no device, nobody to push (_card_holders: why)
        session.add(OutboxEvent(kind=APPLE_PUSH, member_id=member.id, program_id=member.program_id,
                                payload={"pass_version": member.pass_version}))
    if has_google_object:
        object_changed(session, member)


def _card_holders(session: Session, member_id: int) -> tuple[bool, bool]:
    """Whether some device asked for this card's updates (the earn path pushes only then), and whether the card
    has a Google Wallet object; one statement for both.

    Skipping the push when there is none loses nothing, because of the order Wallet follows and the member row
    lock: a card change runs under the member's `SELECT ... FOR UPDATE`, and registering a device inserts a row
    whose foreign key takes `FOR KEY SHARE` on that member row. A registration that committed first is seen
    here; one still in flight makes the change wait for it (and is then seen); one that starts later waits for
    the change to commit. In the last case the device registered a pass it downloaded earlier, and its first
    serials call after registering (without a tag, or with one below the change's: the change's transaction
    was in flight or not yet begun when that tag was answered) lists the card, so the device fetches the new
    version without a push. A Google object made meanwhile is inserted with the card's state as of its insertion,
    which reads the committed change."""
    # Core, no ORM to load; and no autoflush: a registration or Google object this session added must have
    # been flushed already (register_device and start_object flush theirs).
    row = session.connection().execute(_CARD_HOLDERS, {"member_id": member_id}).one()
    return bool(row[0]), bool(row[1])


# Built once (with its cache key): building it per earn cost more CPU than running it
_CARD_HOLDERS = select(
    select(DeviceRegistration.id).where(DeviceRegistration.member_id == bindparam("member_id")).exists(),
    select(GoogleObject.member_id).where(GoogleObject.member_id == bindparam("member_id")).exists())


def card_holders(session: Session, member_ids: list[int]) -> tuple[set[int], set[int]]:
    """`_card_holders` for many members (already locked by the caller) in two statements: (ids with a device,
    ids with a Google object)."""
    devices = session.scalars(select(DeviceRegistration.member_id).distinct()
                              .where(DeviceRegistration.member_id.in_(member_ids)))
    google = session.scalars(select(GoogleObject.member_id).where(GoogleObject.member_id.in_(member_ids)))
    return set(devices), set(google)


def design_changed(session: Session, program: Program) -> None:
    """Branding, terms, tiers or rewards changed: every card of the program is new. One row changes here; a
    worker pushes the devices."""
    program.design_update_tag, program.design_update_seen = next_update_tag(session, Program, program.id)
    program.design_previous_updated_at = program.design_updated_at
    program.design_updated_at = _later_than(program.design_updated_at)
    program.design_version = (program.design_version or 0) + 1
    session.add(OutboxEvent(kind=PROGRAM_REFRESH, program_id=program.id,
                            payload={"design_version": program.design_version}))
    class_changed(session, program)  # Google: logo, colours and texts live on the class, not on each object


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


class UpdateTag(NamedTuple):
    tag: int  # Apple's `lastUpdated` for this change
    seen: int  # every change tagged up to this had finished (committed or rolled back) when the tag was taken


def next_update_tag(session: Session, table: type[Member] | type[Program], row_id: int) -> UpdateTag:
    """The tag of a change of one member's or program's row, taken under that row's lock (already held by most
    callers) and before the change's time is recorded.

    PostgreSQL: `update_tag_base` + this transaction's id (`pg_current_xact_id()`); ids are handed out in order
    and never block, and nothing instance-wide stays locked. Transactions commit in any order, so a tag says
    nothing about commit order; `updated_serials` answers only up to `update_tag_horizon`. `seen` comes from this
    statement's snapshot: every transaction below its xmin had finished.
    SQLite: writers are serialised, so the `pass_updates` counter gives tags in commit order; `seen` = tag - 1."""
    if session.get_bind().dialect.name != "postgresql":
        tag = session.execute(update(Counter).where(Counter.name == PASS_UPDATES)
                              .values(value=Counter.value + 1).returning(Counter.value)).scalar_one()
        return UpdateTag(tag, tag - 1)
    taken = _tags_taken(session).get((table, row_id))
    if taken is not None:
        return taken
    row = session.execute(select(*update_tag_columns()).where(table.id == row_id).with_for_update(key_share=True)).one()
    return UpdateTag(*row)


def update_tag_columns() -> tuple:
    """PostgreSQL: the two columns of `next_update_tag`, for the statement that locks the changed row to return
    them at once (`keep_update_tag`), saving a round trip. The tag is this transaction's id whenever it is read;
    `seen` then comes from the locking statement's snapshot, taken before the lock was granted: never higher
    than one taken after it, so a card is at worst sent again when a 304 would have done."""
    base = select(Counter.value).where(Counter.name == UPDATE_TAG_BASE).scalar_subquery()
    return (base + _xid8("pg_current_xact_id()"), base + _xid8("pg_snapshot_xmin(pg_current_snapshot())") - 1)


def keep_update_tag(session: Session, table: type[Member] | type[Program], row_id: int, tag: UpdateTag) -> None:
    """What `next_update_tag` answers for this row until the transaction ends (the row is locked until then)."""
    _tags_taken(session)[(table, row_id)] = tag


def locked_members(session: Session) -> set[int]:
    """Ids of the members whose rows this transaction read with the statement that locked them
    (`ledger._lock`). Until it ends, such a row's `apple_devices` and `google_object` answer `_card_holders`
    without a statement. Both are written under the same row lock: registering or removing a device updates
    `apple_devices` (`devices.recount_devices`), making a Google object sets `google_object`
    (`googlewallet.start_object`). A registration committed before the lock is in the row; one in flight makes the
    lock wait, and READ COMMITTED then returns the row as it committed (an EXISTS in the same statement would not
    do: it reads the snapshot taken before the wait); one that starts later waits for this change to commit, the
    case `_card_holders` explains. Changes this transaction makes to the two columns are in the object (the
    recount refreshes it)."""
    return transaction_scoped(session, _LOCKED_MEMBERS, set)


_LOCKED_MEMBERS = "locked_members"  # session.info


def _tags_taken(session: Session) -> dict:
    """Update tags this transaction took under row locks, by (table, id)."""
    return transaction_scoped(session, _TAGS_TAKEN, dict)


def catch_up_update_tags(session: Session) -> None:
    """After a restore into a new PostgreSQL cluster, transaction ids start low again, and base + id would fall
    below tags devices already hold: they would never see another change. Raise the base so new tags start above
    every tag stored. In normal operation every stored tag is below base + the current id, so nothing changes
    (and in-flight transactions keep their tags below the horizon). Run at start-up."""
    if session.get_bind().dialect.name != "postgresql":
        return
    stored = func.greatest(select(func.coalesce(func.max(Member.pass_update_tag), 0)).scalar_subquery(),
                           select(func.coalesce(func.max(Program.design_update_tag), 0)).scalar_subquery())
    session.execute(update(Counter).where(Counter.name == UPDATE_TAG_BASE).values(
        value=func.greatest(Counter.value, stored - _xid8("pg_current_xact_id()") + 1)))


def update_tag_horizon(session: Session) -> int | None:
    """The highest tag whose change, if it ever commits, is visible now; None when every committed tag is
    (SQLite). Run it before reading the tags it guards: a transaction below this snapshot's xmin had finished,
    so a later snapshot sees it."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.execute(select(Counter.value + _xid8("pg_snapshot_xmin(pg_current_snapshot())") - 1)
                           .where(Counter.name == UPDATE_TAG_BASE)).scalar_one()


def _xid8(expression: str):
    """A PostgreSQL xid8 (64-bit, never wraps) as a bigint."""
    return literal_column(f"{expression}::text::bigint", BigInteger)


def last_modified(member: Member, now: datetime) -> datetime:
    """The card's Last-Modified: its newest change, in whole seconds, never later than `now`."""
    return min(_whole_second(_change_times(member)[0]), _whole_second(now))


def unchanged_since(member: Member, if_modified_since: datetime) -> bool:
    """True when the device's copy (labelled `if_modified_since`) is surely the newest version: the newest change
    is not after the label, the version before it has an earlier second, and the card's other row (its program
    or its member) was last changed by a transaction that had finished when the newest change was made."""
    times = _change_times(member)
    newest = _whole_second(times[0])
    if newest > if_modified_since:
        return False
    if len(times) > 1 and _whole_second(times[1]) >= newest:
        return False
    return _other_row_finished_first(member)


def _other_row_finished_first(member: Member) -> bool:
    """Tags say nothing about commit order, so a change of the other row made before the newest change may have
    committed after it, and after the device's download: 304 only when its tag is within the newest's `seen`."""
    program = member.program
    if program.design_updated_at is None:
        return True
    if program.design_updated_at > member.pass_updated_at:
        return member.pass_update_tag <= program.design_update_seen
    return program.design_update_tag <= member.pass_update_seen


def _change_times(member: Member) -> list[datetime]:
    """When the card's latest versions were made, newest first: its own two latest and its program's."""
    program = member.program
    times = (member.pass_updated_at, member.pass_previous_updated_at, program.design_updated_at,
             program.design_previous_updated_at)
    return sorted(filter(None, times), reverse=True)


def _later_than(previous: datetime | None) -> datetime:
    """Now, or a microsecond after the previous change if this server's clock is behind the one that made it:
    change times must grow under the row lock, whatever the clocks of several web servers say."""
    now = utcnow()
    return max(now, previous + timedelta(microseconds=1)) if previous is not None else now


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
