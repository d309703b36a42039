"""Apple Wallet updates: push `{}` to every device registered for a pass, so each device fetches the new one.

The push goes out first; the first device to download the new version signs it once into `signed_passes`
and the others get the cached bytes (signing here before the push cost a third of the job's time).

Results are per device, and progress lives in the outbox event's payload, committed after each batch together
with the registrations Apple condemned: `owed` (registration ids answered 429, 5xx or not at all) and, for a
program, `cursor` (the last registration id pushed). A retry pushes the owed devices only, then goes on from
the cursor: nobody is pushed twice and nobody is skipped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import or_, select

from app.domain.devices import forget_push_tokens, is_push_token
from app.models import DeviceRegistration, Member, OutboxEvent, Program
from app.services import app_config, services
from workers.apns import PushResult, shared_client
from workers.errors import DeliveryFailed, RetryLater

FANOUT_BATCH = 2000  # devices per APNs batch and per progress commit; also the most a retry may owe


@dataclass(frozen=True, slots=True)
class CardPush:
    """A leased `apple_push` event, as the lease UPDATE returned it."""

    id: int
    member_id: int
    payload: dict
    attempts: int


@dataclass(slots=True)
class CardOutcome:
    """What became of one card push: `owed` registration ids to retry, or an error (RetryLater, DeliveryFailed)."""

    owed: list[int] = field(default_factory=list)
    error: Exception | None = None


def push_cards(session, events: list[CardPush]) -> dict[int, CardOutcome]:
    """Push the devices of many cards at once: one query for the cards' versions, one for their tokens, one
    push_many over the kept-open connection, one DELETE of the registrations Apple condemned (uncommitted, for
    the caller to commit with the outcomes). An event for an older version than the card's is done without a
    push (the newer one pushes); a retry pushes only the devices it still owes."""
    versions = dict(session.execute(select(Member.id, Member.pass_version)
                                    .where(Member.id.in_({event.member_id for event in events}))).all())
    current = [event for event in events if event.member_id in versions
               and event.payload.get("pass_version", 0) >= versions[event.member_id]]
    devices = _card_devices(session, current)
    session.commit()  # end the read: no transaction stays open while we talk to Apple
    outcomes = {event.id: CardOutcome() for event in events}
    batch = [device for event in current for device in devices[event.id]]
    if not batch:
        return outcomes
    client, topic = apns_client(), app_config().apple.pass_type_id
    results = iter(client.push_many([device.push_token for device in batch], topic))
    gone: set[str] = set()
    for event in current:
        pushed = [(device, next(results)) for device in devices[event.id]]
        outcomes[event.id] = _card_outcome(pushed, topic_accepted=client.has_accepted(topic), gone=gone)
    if gone:
        forget_push_tokens(session, gone)
    return outcomes


def _card_devices(session, events: list[CardPush]) -> dict[int, list]:
    """Each event's (id, member_id, push_token) rows, read with one query: every device of the card, or on a
    retry only those still owed."""
    whole = {event.member_id for event in events if "owed" not in event.payload}
    owed = {device_id for event in events for device_id in event.payload.get("owed", ())}
    rows = session.execute(
        select(DeviceRegistration.id, DeviceRegistration.member_id, DeviceRegistration.push_token)
        .where(or_(DeviceRegistration.member_id.in_(whole), DeviceRegistration.id.in_(owed)))
        .order_by(DeviceRegistration.id)).all() if whole or owed else []
    by_member: dict[int, list] = {}
    for row in rows:
        by_member.setdefault(row.member_id, []).append(row)
    return {event.id: [row for row in by_member.get(event.member_id, [])
                       if "owed" not in event.payload or row.id in event.payload["owed"]] for event in events}


def _card_outcome(pushed: list[tuple], *, topic_accepted: bool, gone: set[str]) -> CardOutcome:
    """One card's answers: condemned tokens join `gone` unless the answers condemn the configuration instead."""
    results = [result for _, result in pushed]
    try:
        _refuse_misconfigured(results, topic_accepted=topic_accepted)
    except DeliveryFailed as error:
        return CardOutcome(error=error)
    gone.update(result.token for result in results if result.outcome == "unregistered")
    owed = [(device.id, result) for device, result in pushed if result.outcome == "retry"]
    try:
        _retry_if_owed(owed)
    except RetryLater as error:
        return CardOutcome(owed=[device_id for device_id, _ in owed], error=error)
    return CardOutcome()


def refresh_program(session, event: OutboxEvent, between_batches: Callable[[], object] = lambda: None) -> None:
    """A program's design changed (already tagged on the program row in the request's transaction): push
    every registered device in batches of FANOUT_BATCH, in registration id order, resuming at the cursor.
    `between_batches` runs after each batch's progress is committed: the job runner delivers the card pushes
    that came due meanwhile, so a fan-out to 100,000 devices does not hold up a till's earn."""
    program = session.get(Program, event.program_id)
    if event.payload.get("design_version", 0) < program.design_version:
        return  # a newer design change is queued and will push the same devices
    owed = _push_owed(session, event)
    cursor = event.payload.get("cursor", 0)
    while True:
        _save_progress(session, event, owed=owed, cursor=cursor)
        between_batches()
        if len(owed) >= FANOUT_BATCH:
            break  # owing a batch's worth means APNs is unwell: stop here, go on from the cursor later
        devices = session.execute(
            _devices().join(Member, Member.id == DeviceRegistration.member_id)
            .where(Member.program_id == event.program_id, DeviceRegistration.id > cursor)
            .limit(FANOUT_BATCH)).all()
        session.commit()
        if not devices:
            break
        owed += _push(session, devices)
        cursor = devices[-1].id
    _retry_if_owed(owed)


def _push_owed(session, event: OutboxEvent) -> list[tuple[int, PushResult]]:
    """Push again the devices an earlier attempt still owes; what they still owe after this."""
    owed_ids = event.payload.get("owed") or []
    devices = session.execute(_devices().where(DeviceRegistration.id.in_(owed_ids))).all() if owed_ids else []
    session.commit()
    return _push(session, devices) if devices else []


def _devices():
    return select(DeviceRegistration.id, DeviceRegistration.push_token).order_by(DeviceRegistration.id)


def _push(session, devices) -> list[tuple[int, PushResult]]:
    """Push one batch of (id, push_token) rows; delete (uncommitted) the registrations Apple condemned; return
    the (registration id, result) of devices owed a retry."""
    client, topic = apns_client(), app_config().apple.pass_type_id
    results = client.push_many([device.push_token for device in devices], topic)
    _refuse_misconfigured(results, topic_accepted=client.has_accepted(topic))
    gone = {result.token for result in results if result.outcome == "unregistered"}
    if gone:
        forget_push_tokens(session, gone)
    return [(device.id, result) for device, result in zip(devices, results, strict=True) if result.outcome == "retry"]


def _refuse_misconfigured(results: list[PushResult], *, topic_accepted: bool) -> None:
    """Raise DeliveryFailed (a dead letter, nothing deleted) when the answers condemn every push, not a device.

    A fatal answer (403 certificate, TLS rejected, TopicDisallowed) condemns every push. So does a batch where
    APNs accepted (200) or recognised (410) no token and called the ones it judged BadDeviceToken or
    DeviceTokenNotForTopic: that is what a wrong certificate, pass type id or APNs environment looks like, and
    believing it would delete every registration. One such answer alone is believed (that device is dropped)
    only once this client has had a push accepted for the topic, proving certificate and topic right;
    otherwise a wrong certificate would wipe one-device members one push at a time.
    """
    fatal = [result for result in results if result.outcome == "fatal"]
    if fatal:
        raise DeliveryFailed(f"APNs refused {len(fatal)} push(es): {fatal[0].status} {fatal[0].reason} "
                             "(check the pass certificate and APPLE_PASS_TYPE_ID)")
    vouched = any(result.status in (200, 410) for result in results)
    # Tokens that fail our own rule were never sent (legacy rows): certainly bad, whatever the certificate.
    condemned = [r for r in results if r.outcome == "unregistered" and r.status == 400 and is_push_token(r.token)]
    if condemned and not vouched and (len(condemned) > 1 or not topic_accepted):
        raise DeliveryFailed(
            f"APNs called {len(condemned)} device token(s) {condemned[0].reason} and accepted none: the pass "
            "certificate, APPLE_PASS_TYPE_ID or APNS_BASE_URL (production vs sandbox) is wrong; "
            "no registration was deleted")


def _save_progress(session, event: OutboxEvent, owed: list[tuple[int, PushResult]], **progress) -> None:
    """Commit the deletions of the batch just pushed together with where the event stands."""
    event.payload = {**event.payload, **progress, "owed": [device_id for device_id, _ in owed]}
    session.commit()


def _retry_if_owed(owed: list[tuple[int, PushResult]]) -> None:
    """The job runner retries the event with backoff (capped attempts); the retry pushes only these devices."""
    if owed:
        first = owed[0][1]
        raise RetryLater(f"APNs owes {len(owed)} device(s) a push, e.g. {first.status} {first.reason}")


def apns_client():
    """This process's one APNs client: one connection kept open across jobs."""
    apple = app_config().apple
    signer = services().signer
    return shared_client(cert_pem=signer.cert_pem, key_pem=signer.key_pem, base_url=apple.apns_base_url,
                         ca_file=str(apple.apns_ca_file) if apple.apns_ca_file else None)
