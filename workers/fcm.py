"""Delivering an `fcm` outbox event: the notification, in the member's language, to every app token the member
has, with the merchant's own Firebase key or else the instance's. Tokens FCM calls dead are removed; tokens that
met a 429 or 5xx are retried with backoff (and only they: `payload["owed"]`)."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from sqlalchemy.orm import Session

from app.domain import fcm
from app.domain.notifications import notice_for
from app.encryption import UnsealError
from app.models import Member, OutboxEvent
from app.services import services
from passes.google import ServiceAccount
from workers import fcm_client
from workers.errors import DeliveryFailed, RetryLater
from workers.fcm_client import GONE, REFUSED, RETRY

log = logging.getLogger(__name__)


def send_notification(app: Flask, session: Session, event: OutboxEvent) -> None:
    """The outbox handler of kind `fcm` (workers/jobs.py HANDLERS). Commits what it learnt about tokens."""
    merchant_id, body = event.payload["merchant_id"], event.payload["event"]
    member = session.get(Member, event.member_id) if event.member_id else None
    notice = notice_for(body["type"], body["data"], member.locale) if member else None
    tokens = fcm.member_tokens(session, member.id) if notice else []
    if "owed" in event.payload:  # a retry: only the tokens that have not had it, and are still registered
        owed = set(event.payload["owed"])
        tokens = [token for token in tokens if token in owed]
    if not tokens:
        return
    owner, account = _credentials(app, session, merchant_id)
    sender = fcm_client.sender_for(owner, account, services(app).config.fcm.base_url)
    try:
        outcomes = sender.send(tokens, notice, {"type": body["type"], "event_id": body["id"]})
    except fcm_client.FcmUnreachable as error:
        raise RetryLater(str(error)) from None
    except fcm_client.CredentialsRefused as error:
        raise DeliveryFailed(f"merchant {merchant_id}'s FCM credentials ({owner}): {error}") from None
    _record(session, event, merchant_id, owner, outcomes)


def _record(session: Session, event: OutboxEvent, merchant_id: int, owner: str,
            outcomes: dict[str, fcm_client.Outcome]) -> None:
    by_status: dict[str, list[str]] = {}
    for token, outcome in outcomes.items():
        by_status.setdefault(outcome.status, []).append(token)
    removed = fcm.remove_tokens(session, merchant_id, by_status.get(GONE, []))
    if removed:
        log.info("removed %d FCM token(s) of merchant %s that FCM called dead", removed, merchant_id)
    retry, refused = by_status.get(RETRY, []), by_status.get(REFUSED, [])
    if retry:
        event.payload = {**event.payload, "owed": retry}
    session.commit()
    if retry:
        raise RetryLater(f"{len(retry)} of {len(outcomes)} FCM message(s) to retry: {outcomes[retry[0]].error}")
    if refused and len(refused) == len(outcomes):
        raise DeliveryFailed(f"FCM refused every message of merchant {merchant_id} with the {owner} credentials "
                             f"(the wrong Firebase project?): {outcomes[refused[0]].error}")
    if refused:
        log.warning("FCM refused %d of %d message(s) of merchant %s: %s", len(refused), len(outcomes), merchant_id,
                    outcomes[refused[0]].error)


def _credentials(app: Flask, session: Session, merchant_id: int) -> tuple[str, ServiceAccount]:
    """The merchant's own key first; the instance's (FCM_SERVICE_ACCOUNT_FILE) for a merchant with none."""
    settings = services(app).config.fcm
    row = fcm.get_credentials(session, merchant_id)
    if row is not None:
        try:
            return f"merchant {merchant_id}", fcm.open_credentials(row, settings.credentials_secret)
        except UnsealError:
            raise DeliveryFailed(f"merchant {merchant_id}'s FCM credentials do not open with the current "
                                 "FCM_CREDENTIALS_KEY (or SECRET_KEY): it changed since they were uploaded; upload "
                                 "them again (PUT /api/v1/fcm/credentials)") from None
    if settings.service_account_file is not None:
        return "instance", _instance_account(settings.service_account_file)
    raise DeliveryFailed(f"merchant {merchant_id} has app tokens but no FCM credentials: upload them (PUT "
                         "/api/v1/fcm/credentials) or set FCM_SERVICE_ACCOUNT_FILE")


def _instance_account(path: Path) -> ServiceAccount:
    """Read at each send: a rotated key file is picked up without a restart (the sender is remade if it changed)."""
    try:
        return ServiceAccount.from_file(path)
    except (OSError, ValueError) as error:
        raise DeliveryFailed(f"FCM_SERVICE_ACCOUNT_FILE {str(path)!r}: {error}") from None
