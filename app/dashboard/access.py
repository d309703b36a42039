"""Who and what may act for the merchant: tills (pairing codes, POS keys by store), API keys, webhooks. A key,
a pairing code or a webhook secret is shown once, on the page that made it, and never stored in clear."""

from __future__ import annotations

from flask import abort, current_app, g, request, url_for
from sqlalchemy import select

from app.api.schemas import PairingCodeIn, WebhookIn
from app.auth import new_api_key, revoke_api_key
from app.dashboard import bp
from app.dashboard.forms import FormError, load, save
from app.dashboard.rendering import locale, render
from app.dashboard.sessions import owner_only, signed_in
from app.domain import webhooks
from app.domain.errors import DomainError
from app.encryption import secret_box
from app.models import ApiKey
from app.pages.catalogue import t
from app.pairing import DEFAULT_TTL_SECONDS, create_pairing_code
from app.qr import qr_svg
from app.services import app_config, db_session

RECENT_ATTEMPTS = 10


@bp.get("/tills")
@signed_in
def tills(created: dict | None = None):
    return render("dashboard/tills.html", keys=_keys("pos"), created=created)


@bp.post("/tills/pairing-codes")
@signed_in
@owner_only
def create_till_code():
    session = db_session()
    try:
        data = load(PairingCodeIn(), {"store": request.form.get("store", "").strip() or None})
    except FormError as error:
        return render("dashboard/tills.html", 422, keys=_keys("pos"), note=["error", str(error)])
    code, row = create_pairing_code(session, g.user.merchant_id, data.get("store"), DEFAULT_TTL_SECONDS)
    session.commit()
    pair_url = f"{app_config().public_base_url}/checkout#pair={code}"
    return render("dashboard/tills.html", 201, keys=_keys("pos"),
                  pairing={"code": code, "store": row.store, "expires_at": row.expires_at, "qr": qr_svg(pair_url)})


@bp.get("/api-keys")
@signed_in
def api_keys():
    return render("dashboard/api_keys.html", keys=_keys(None))


@bp.post("/api-keys")
@signed_in
@owner_only
def create_api_key():
    scope = request.form.get("scope")
    if scope not in ("admin", "pos"):
        abort(400, "scope")
    store = request.form.get("store", "").strip()[:120] or None
    raw, _row = new_api_key(db_session(), g.user.merchant_id, scope, store=store)
    db_session().commit()
    return render("dashboard/api_keys.html", 201, keys=_keys(None), created_key=raw)


@bp.post("/api-keys/<int:key_id>/revoke")
@signed_in
@owner_only
def revoke_key(key_id: int):
    key = db_session().get(ApiKey, key_id)
    if key is None or key.merchant_id != g.user.merchant_id:
        abort(404)
    back = url_for("dashboard.tills") if request.form.get("back") == "tills" else url_for("dashboard.api_keys")
    return save(lambda: revoke_api_key(db_session(), key.id) and None, t("dash.saved.revoked", locale()), back)


@bp.get("/webhooks")
@signed_in
def webhooks_page(created: dict | None = None, status: int = 200):
    session = db_session()
    found = webhooks.list_webhooks(session, g.user.merchant_id)
    attempts = {hook.id: webhooks.attempts_page(session, hook, None, RECENT_ATTEMPTS) for hook in found}
    return render("dashboard/webhooks.html", status, webhooks=found, attempts=attempts, created=created,
                  event_types=webhooks.EVENT_TYPES)


@bp.post("/webhooks")
@signed_in
@owner_only
def create_webhook():
    session = db_session()
    try:
        data = load(WebhookIn(), {"url": request.form.get("url", "").strip(), "events": request.form.getlist("events")})
        hook, secret = webhooks.create_webhook(
            session, g.user.merchant_id, data["url"], data["events"],
            allow_private=app_config().webhooks_allow_private_targets,
            box=secret_box(current_app.config["SECRET_KEY"], webhooks.SECRET_PURPOSE))
    except (FormError, DomainError) as error:
        session.rollback()
        g.session["note"] = ["error", str(error)]
        return webhooks_page(status=422)
    session.commit()
    return webhooks_page(created={"id": hook.id, "secret": secret}, status=201)


@bp.post("/webhooks/<int:webhook_id>/delete")
@signed_in
@owner_only
def delete_webhook(webhook_id: int):
    return save(lambda: webhooks.delete_webhook(db_session(), g.user.merchant_id, webhook_id),
                t("dash.saved.deleted_webhook", locale()), url_for("dashboard.webhooks_page"))


def _keys(scope: str | None) -> list[ApiKey]:
    """The merchant's keys (one scope, or all), live ones first, newest first."""
    query = select(ApiKey).where(ApiKey.merchant_id == g.user.merchant_id)
    if scope:
        query = query.where(ApiKey.scope == scope)
    return list(db_session().scalars(query.order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())))
