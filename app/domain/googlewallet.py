"""Which cards live in Google Wallet, and the outbox rows that keep them current. No Google API here: workers
(workers/google_wallet.py) deliver the rows after commit.

A member's object is made when they first open their save link (`start_object`), not at enrolment: members who
never open it cost Google no calls. From then on every change of their card writes one GOOGLE_OBJECT row
(`passupdates.card_changed`), a program's design change one GOOGLE_CLASS row, and the events worth a buzz
(tier changed, reward unlocked, points expiring) a GOOGLE_MESSAGE row through `events.emit`. Cards nobody made
queue nothing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.domain import events
from app.domain.event_data import member_event
from app.models import GoogleCallbackNonce, GoogleClass, GoogleObject, Member, OutboxEvent, Program, utcnow

GOOGLE_OBJECT = "google_object"  # insert or patch a member's object to the card's current state
GOOGLE_CLASS = "google_class"  # insert or update a program's class to its current design
GOOGLE_MESSAGE = "google_message"  # a message on a member's object (notifying, while Google's cap allows)
NOTIFYING_EVENTS = ("tier.changed", "reward.unlocked", "points.expiring", "campaign.message", "challenge.completed")


def class_suffix(program: Program) -> str:
    return f"punchpass-program-{program.id}"


def object_changed(session: Session, member: Member) -> None:
    """Queue the object's update. Several waiting for one object collapse into one call (the worker sends the
    newest state)."""
    session.add(OutboxEvent(kind=GOOGLE_OBJECT, member_id=member.id, program_id=member.program_id, payload={}))


def class_changed(session: Session, program: Program) -> None:
    """A design change: queue the class's update, if the program has a class at Google."""
    if session.scalar(select(GoogleClass.program_id).where(GoogleClass.program_id == program.id)) is not None:
        session.add(OutboxEvent(kind=GOOGLE_CLASS, program_id=program.id, payload={}))


def start_object(session: Session, member: Member, issuer_id: str) -> GoogleObject:
    """The member's object row (and their program's class row), made once; the first call queues their insertion.
    Two first calls at once make one row (the insert does nothing on conflict)."""
    row = session.get(GoogleObject, member.id)
    if row is not None:
        return row
    program = member.program
    if _insert_once(session, GoogleClass, program_id=program.id, class_id=f"{issuer_id}.{class_suffix(program)}",
                    created_at=utcnow()):
        session.add(OutboxEvent(kind=GOOGLE_CLASS, program_id=program.id, payload={}))
    if _insert_once(session, GoogleObject, member_id=member.id, object_id=f"{issuer_id}.{member.serial_number}",
                    notified_at=[], message_ids=[], created_at=utcnow()):
        member.google_object = True  # an UPDATE under the member's row lock: passupdates.locked_members
        object_changed(session, member)
    session.flush()
    return session.get(GoogleObject, member.id)


def _insert_once(session: Session, table, **values) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row is new."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    key = table.__mapper__.primary_key[0]
    return session.execute(insert(table).values(**values).on_conflict_do_nothing().returning(key)).first() is not None


def class_row(session: Session, program_id: int) -> GoogleClass | None:
    return session.get(GoogleClass, program_id)


def member_of_object(session: Session, object_id: str) -> Member | None:
    return session.scalar(select(Member).join(GoogleObject, GoogleObject.member_id == Member.id)
                          .where(GoogleObject.object_id == object_id))


def first_time_nonce(session: Session, nonce: str) -> bool:
    """Record a callback's nonce; False when it was seen before (Google delivers at least once)."""
    return _insert_once(session, GoogleCallbackNonce, nonce=nonce, received_at=utcnow())


def record_saved(session: Session, member: Member, saved: bool) -> bool:
    """Google says the card was saved to, or deleted from, someone's wallet: remember it and tell the merchant
    (pass.installed / pass.removed). True when that changed what we knew."""
    member = session.get(Member, member.id, with_for_update={"of": Member}, populate_existing=True)
    if member.google_saved == saved:
        return False
    member.google_saved = saved
    member.google_ever_saved = member.google_ever_saved or saved
    events.emit(session, **member_event("pass.installed" if saved else "pass.removed", member, wallet="google"))
    return True


def _wants_a_message(session: Session, merchant_id: int, type: str, member_id: int | None) -> bool:
    """Only events worth a buzz, and only for members whose card is in Google Wallet (or about to be)."""
    if type not in NOTIFYING_EVENTS or member_id is None:
        return False
    return session.scalar(select(GoogleObject.member_id).where(GoogleObject.member_id == member_id)) is not None


events.add_channel(GOOGLE_MESSAGE, _wants_a_message)
