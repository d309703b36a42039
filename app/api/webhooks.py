"""Webhooks (admin keys only): register a URL for event types, list, delete, see every delivery attempt, replay.

Creating one answers the signing secret, once. It is not stored in clear anywhere, so this route takes no
`Idempotency-Key` (a stored response would hold the secret): a retried creation makes a second webhook, which
the merchant deletes."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.schemas import (
    PageQuery,
    WebhookAttemptPage,
    WebhookCreated,
    WebhookDeliveryOut,
    WebhookIn,
    WebhookList,
)
from app.auth import ADMIN, auth, current_caller
from app.domain import webhooks
from app.encryption import secret_box
from app.models import utcnow
from app.services import app_config, db_session

bp = APIBlueprint("webhooks", __name__, url_prefix="/api/v1", tag="Webhooks")


@bp.post("/webhooks")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(WebhookIn, arg_name="data")
@bp.output(WebhookCreated, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 409, 413, 422))
def create_webhook(data):
    """Deliveries are signed with the `secret` answered here, and only here: keep it."""
    session = db_session()
    webhook, secret = webhooks.create_webhook(
        session, current_caller().merchant_id, data["url"], data["events"],
        allow_private=app_config().webhooks_allow_private_targets,
        box=secret_box(current_app.config["SECRET_KEY"], webhooks.SECRET_PURPOSE))
    session.commit()
    return {"id": webhook.id, "url": webhook.url, "events": webhook.events, "secret": secret,
            "created_at": webhook.created_at}


@bp.get("/webhooks")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(WebhookList)
@bp.doc(responses=problems(401, 403))
def list_webhooks():
    """The merchant's webhooks, without their secrets."""
    return {"data": webhooks.list_webhooks(db_session(), current_caller().merchant_id)}


@bp.delete("/webhooks/<int:webhook_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.output({}, status_code=204)
@bp.doc(responses=problems(401, 403, 404))
def delete_webhook(webhook_id):
    """The webhook goes with its delivery history; nothing more is sent to it."""
    session = db_session()
    webhooks.delete_webhook(session, current_caller().merchant_id, webhook_id)
    session.commit()
    return ""


@bp.get("/webhooks/<int:webhook_id>/deliveries")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(WebhookAttemptPage)
@bp.doc(responses=problems(401, 403, 404, 422))
def deliveries(webhook_id, page):
    """Every attempt, newest first: the event, the receiver's status code (null when no answer came), the error
    and the next retry. Pass `next_before` back as `before` for the next page."""
    session = db_session()
    webhook = webhooks.get_webhook(session, current_caller().merchant_id, webhook_id)
    rows = webhooks.attempts_page(session, webhook, page.get("before"), page["limit"] + 1)
    more = len(rows) > page["limit"]
    rows = rows[:page["limit"]]
    return {"data": [_attempt_json(*row) for row in rows], "next_before": rows[-1][0].id if more else None}


@bp.post("/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/replay")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.output(WebhookDeliveryOut, status_code=202)
@bp.doc(responses=problems(400, 401, 403, 404, 409))
def replay(webhook_id, delivery_id):
    """Send a delivered or dead delivery again (same event id and body, a fresh signature), retried as a new
    one; 409 while it is still pending."""
    delivery = webhooks.replay(db_session(), current_caller().merchant_id, webhook_id, delivery_id, utcnow())
    return delivery


def _attempt_json(attempt, event_id: str, event_type: str, delivery_status: str) -> dict:
    return {"id": attempt.id, "delivery_id": attempt.delivery_id, "event_id": event_id, "event_type": event_type,
            "attempted_at": attempt.attempted_at, "status_code": attempt.status_code, "error": attempt.error,
            "duration_ms": attempt.duration_ms, "next_retry_at": attempt.next_retry_at,
            "delivery_status": delivery_status}
