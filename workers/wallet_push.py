"""Apple Wallet updates: push `{}` to every device registered for a pass, so each device fetches the new one.

The signed pass is built before the push, so the devices' downloads right after it cost no signature."""

from __future__ import annotations

from collections import Counter

from flask import current_app
from sqlalchemy import delete, func, select, update

from app import app_config
from app.cards import signed_pass
from app.domain.passupdates import next_modified_time, next_update_tag
from app.models import DeviceRegistration, Member, OutboxEvent
from workers.apns import shared_client
from workers.errors import DeliveryFailed, RetryLater

FANOUT_BATCH = 2000


def push_member_pass(session, event: OutboxEvent) -> None:
    """Push one member's devices, unless a newer version of the card is queued (that event will push)."""
    member = session.get(Member, event.member_id)
    if member is None or event.payload.get("pass_version", 0) < member.pass_version:
        return
    tokens = list(session.scalars(select(DeviceRegistration.push_token)
                                  .where(DeviceRegistration.member_id == member.id)))
    if not tokens:
        return
    signed_pass(session, member)
    session.commit()
    _push(session, tokens)


def refresh_program(session, event: OutboxEvent) -> None:
    """A program's design changed: give every card a new version, then push every registered device, streaming
    registrations in batches so memory stays flat however many members there are."""
    newest = session.scalar(select(func.max(Member.pass_updated_at)).where(Member.program_id == event.program_id))
    members = update(Member).where(Member.program_id == event.program_id)
    session.execute(members.values(pass_version=Member.pass_version + 1, pass_updated_at=next_modified_time(newest)))
    # The update tag is taken last, as every card-changing transaction does, so the counter row and member
    # rows are always locked in the same order and cannot deadlock against a concurrent earn.
    session.execute(members.values(pass_update_tag=next_update_tag(session)))
    session.commit()
    query = (select(DeviceRegistration.push_token).join(Member, Member.id == DeviceRegistration.member_id)
             .where(Member.program_id == event.program_id).order_by(DeviceRegistration.id))
    batch: list[str] = []
    for token in session.execute(query.execution_options(yield_per=FANOUT_BATCH)).scalars():
        batch.append(token)
        if len(batch) == FANOUT_BATCH:
            _push(session, batch)
            batch = []
    if batch:
        _push(session, batch)


def _push(session, tokens: list[str]) -> None:
    """Push; forget devices Apple says are gone; decide whether the event must be retried or buried."""
    results = apns_client().push_many(tokens, app_config().apple.pass_type_id)
    outcomes = Counter(r.outcome for r in results)
    gone = [r.token for r in results if r.outcome == "unregistered"]
    if gone:
        session.execute(delete(DeviceRegistration).where(DeviceRegistration.push_token.in_(gone)))
        session.commit()
    if outcomes["fatal"]:
        first = next(r for r in results if r.outcome == "fatal")
        raise DeliveryFailed(f"APNs refused {outcomes['fatal']} push(es): {first.status} {first.reason} "
                             "(check the pass certificate and APPLE_PASS_TYPE_ID)")
    if outcomes["retry"]:
        first = next(r for r in results if r.outcome == "retry")
        raise RetryLater(f"APNs answered {outcomes['retry']} push(es) with {first.status} {first.reason}")


def apns_client():
    """This process's one APNs client: one connection kept open across jobs."""
    apple = app_config().apple
    signer = current_app.extensions["punchpass"]["signer"]
    return shared_client(cert_pem=signer.cert_pem, key_pem=signer.key_pem, base_url=apple.apns_base_url,
                         ca_file=str(apple.apns_ca_file) if apple.apns_ca_file else None)
