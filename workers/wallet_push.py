"""Apple Wallet updates: push `{}` to every device registered for a pass, so each device fetches the new one.

The push goes out first; the first device to download the new version signs it once into `signed_passes`
and the others get the cached bytes (signing here before the push cost a third of the job's time)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import delete, select

from app.services import app_config, services
from app.models import DeviceRegistration, Member, OutboxEvent, Program
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
    session.commit()  # end the read: no transaction stays open while we talk to Apple
    if tokens:
        _push(session, tokens)


def refresh_program(session, event: OutboxEvent) -> None:
    """A program's design changed (already tagged on the program row in the request's transaction): push
    every registered device, streaming registrations in batches so memory stays flat."""
    program = session.get(Program, event.program_id)
    if event.payload.get("design_version", 0) < program.design_version:
        return  # a newer design change is queued and will push the same devices
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
    signer = services().signer
    return shared_client(cert_pem=signer.cert_pem, key_pem=signer.key_pem, base_url=apple.apns_base_url,
                         ca_file=str(apple.apns_ca_file) if apple.apns_ca_file else None)
