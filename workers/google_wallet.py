"""Delivering Google Wallet outbox rows: a program's class (GOOGLE_CLASS), a member's object (GOOGLE_OBJECT) and the
messages on it (GOOGLE_MESSAGE). Google syncs saved cards itself: updating the object is the whole "push".

- Coalescing: a delivery first takes every other waiting row of the same kind for the same object, then reads
  the card's current state, so a burst of earns on one card costs one call (the newest state wins).
- Inserts are idempotent: 409 means the object exists (Google made it from a save link's JWT, or an earlier try
  got through): GET it, PATCH what differs. Updates PATCH only the fields that changed since the last accepted
  state (`GoogleObject.sent`).
- Messages notify (TEXT_AND_NOTIFY) at most 3 times per object in 24 hours, Google's cap: past our own count, or
  on Google's 403 quotaExceeded, the message goes silently (TEXT) and is never retried as a notification. At
  most 10 messages stay on an object.
Each handler commits what it recorded; the job runner then records the event's outcome."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.domain.googlewallet import GOOGLE_CLASS, GOOGLE_MESSAGE, GOOGLE_OBJECT
from app.domain.notifications import notice_for
from app.google_cards import loyalty_class, loyalty_object
from app.models import GoogleClass, GoogleObject, Member, OutboxEvent, Program, utcnow
from app.services import services
from passes.google import MAX_MESSAGES, changed_fields
from workers.errors import DeliveryFailed
from workers.google_client import QuotaExceeded, WalletClient, wallet_client

NOTIFY_CAP = 3  # notifying messages per object per 24 hours (Google answers a 4th with 403 quotaExceeded)
NOTIFY_WINDOW = timedelta(hours=24)


def deliver_class(app: Flask, session: Session, event: OutboxEvent) -> None:
    config = services(app).config
    if config.google is None:
        return  # Google was switched off after the row was written: nothing to do
    _coalesce(session, event, OutboxEvent.program_id == event.program_id)
    program = session.get(Program, event.program_id, populate_existing=True)
    _sync_class(session, wallet_client(config), loyalty_class(session, config, program), program)
    session.commit()


def deliver_object(app: Flask, session: Session, event: OutboxEvent) -> None:
    config = services(app).config
    if config.google is None:
        return
    _coalesce(session, event, OutboxEvent.member_id == event.member_id)
    member, row = _member_and_object(session, event.member_id)
    if row is not None:
        _sync_object(session, wallet_client(config), app, member, row)
    session.commit()


def deliver_message(app: Flask, session: Session, event: OutboxEvent) -> None:
    """One message for every event waiting for this card (a tier change and a reward in one earn: one buzz)."""
    config = services(app).config
    if config.google is None:
        return
    taken = _coalesce(session, event, OutboxEvent.member_id == event.member_id)
    if taken:  # kept on this event, so a retry still says everything
        event.payload = {**event.payload, "also": [*event.payload.get("also", []),
                                                   *(item["event"] for item in taken if "event" in item)]}
        session.commit()
    member, row = _member_and_object(session, event.member_id)
    if row is None:
        return
    client = wallet_client(config)
    if row.sent is None:
        _sync_object(session, client, app, member, row)
    happenings = [event.payload["event"], *event.payload.get("also", [])]
    notices = [notice_for(item["type"], item["data"], member.locale) for item in happenings]
    notices = list(dict.fromkeys(notice for notice in notices if notice))  # a tier move down says nothing
    if notices:
        _add_message(session, client, row, {"id": f"punchpass-{event.id}", "header": notices[0].title,
                                            "body": " ".join(notice.body for notice in notices)})
    session.commit()


def _coalesce(session: Session, event: OutboxEvent, same_card) -> list[dict]:
    """Take every other waiting row of this kind for the same card (marked delivered, committed before the card
    is read, so whatever they announced is in the state this delivery sends); their payloads."""
    now = utcnow()
    payloads = session.scalars(
        update(OutboxEvent)
        .where(OutboxEvent.kind == event.kind, same_card, OutboxEvent.id != event.id,
               OutboxEvent.delivered_at.is_(None), OutboxEvent.dead_at.is_(None), OutboxEvent.available_at <= now)
        .values(delivered_at=now, last_error=f"coalesced into event {event.id}")
        .returning(OutboxEvent.payload)).all()
    session.commit()
    return list(payloads)


def _member_and_object(session: Session, member_id: int) -> tuple[Member, GoogleObject | None]:
    member = session.get(Member, member_id, populate_existing=True)
    return member, session.get(GoogleObject, member_id, populate_existing=True)


def _sync_class(session: Session, client: WalletClient, body: dict, program: Program) -> None:
    """Insert the class, or PATCH Google's copy to the current design: one call either way, the class always sent
    UNDER_REVIEW (Google refuses updates of an approved class without it)."""
    row = session.get(GoogleClass, program.id)
    status = 404
    if row.sent_version is not None:
        status, _ = client.call("PATCH", "loyaltyClass", body["id"], body=body)
    if status == 404:
        status, _ = client.call("POST", "loyaltyClass", body=body)
        if status == 409:  # inserted by an earlier try that got through, or by a save link's JWT
            _patch_differences(client, "loyaltyClass", body, always=("reviewStatus",))
        elif status == 404:
            raise DeliveryFailed(f"Google Wallet answered 404 to inserting class {body['id']}: is the issuer id "
                                 "right?")
    row.sent_version, row.sent_at = program.design_version, utcnow()


def _sync_object(session: Session, client: WalletClient, app: Flask, member: Member, row: GoogleObject) -> None:
    """Insert the object, or PATCH the fields that changed since Google last accepted it."""
    config = services(app).config
    body = loyalty_object(session, config, member)
    if row.sent is None:
        _ensure_class(session, client, config, member.program)
        status, _ = client.call("POST", "loyaltyObject", body=body)
        if status == 409:  # made by a save link's JWT, or by an earlier try that got through
            _patch_differences(client, "loyaltyObject", body)
        elif status == 404:
            raise DeliveryFailed(f"Google Wallet has no class {body['classId']} for object {body['id']}")
    else:
        patch = changed_fields(row.sent, body)
        if patch:
            status, _ = client.call("PATCH", "loyaltyObject", row.object_id, body=patch)
            if status == 404:  # gone at Google (another issuer account, a reset demo): insert it again
                row.sent = None
                return _sync_object(session, client, app, member, row)
    row.sent, row.sent_at = body, utcnow()


def _ensure_class(session: Session, client: WalletClient, config, program: Program) -> None:
    row = session.get(GoogleClass, program.id)
    if row is not None and row.sent_version is None:
        _sync_class(session, client, loyalty_class(session, config, program), program)


def _patch_differences(client: WalletClient, resource: str, body: dict, always: tuple[str, ...] = ()) -> None:
    """GET Google's copy and PATCH what differs from `body` (and the `always` fields)."""
    status, current = client.call("GET", resource, body["id"])
    if status == 404:
        raise DeliveryFailed(f"Google Wallet answered 409 to inserting {body['id']}, then 404 to reading it")
    patch = changed_fields(current, body)
    patch.update({name: body[name] for name in always})
    if patch:
        client.call("PATCH", resource, body["id"], body=patch)


def _add_message(session: Session, client: WalletClient, row: GoogleObject, message: dict) -> None:
    """addMessage, notifying while the object's 24-hour count allows; then prune to the newest MAX_MESSAGES."""
    now = utcnow()
    recent = [moment for moment in row.notified_at if datetime.fromisoformat(moment) > now - NOTIFY_WINDOW]
    notify = len(recent) < NOTIFY_CAP
    try:
        answer = _send_message(client, row, message, notify)
        if notify:
            recent.append(now.isoformat())
    except QuotaExceeded:  # Google counted notifications we did not (another system, a lost record): go silent
        recent = recent + [now.isoformat()] * (NOTIFY_CAP - len(recent))
        answer = _send_message(client, row, message, notify=False)
    row.notified_at = recent
    messages = (answer.get("resource") or {}).get("messages") or []
    if len(messages) > MAX_MESSAGES:
        messages = messages[-MAX_MESSAGES:]
        client.call("PATCH", "loyaltyObject", row.object_id, body={"messages": messages})
    row.message_ids = [item.get("id") for item in messages][-MAX_MESSAGES:]


def _send_message(client: WalletClient, row: GoogleObject, message: dict, notify: bool) -> dict:
    body = {"message": {**message, "messageType": "TEXT_AND_NOTIFY" if notify else "TEXT"}}
    try:
        status, answer = client.call("POST", "loyaltyObject", row.object_id, body=body, action="addMessage")
    except QuotaExceeded:
        if notify:
            raise
        raise DeliveryFailed("Google Wallet refused a silent message for quota") from None
    if status == 404:
        raise DeliveryFailed(f"Google Wallet has no object {row.object_id} to add a message to")
    return answer


# outbox kind -> handler, merged into workers.jobs.HANDLERS
HANDLERS = {GOOGLE_CLASS: deliver_class, GOOGLE_OBJECT: deliver_object, GOOGLE_MESSAGE: deliver_message}
