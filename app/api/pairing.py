"""Pairing codes: how an admin signs a till in on /checkout without handing it an API key."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.openapi import problems
from app.api.schemas import PairingCodeIn, PairingCodeOut
from app.auth import ADMIN, auth, current_caller
from app.pairing import DEFAULT_TTL_SECONDS, create_pairing_code
from app.qr import qr_svg
from app.services import app_config, db_session

bp = APIBlueprint("pairing", __name__, url_prefix="/api/v1", tag="Tills")


@bp.post("/pairing-codes")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(PairingCodeIn, arg_name="data")
@bp.output(PairingCodeOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 413, 422))
def create(data):
    """A short-lived, single-use code (and its QR) that signs a till in on /checkout with a new POS key.
    Shown once: only its hash is stored. No Idempotency-Key: a retry simply makes another code."""
    session = db_session()
    code, row = create_pairing_code(session, current_caller().merchant_id, data.get("store"),
                                    data.get("ttl_seconds") or DEFAULT_TTL_SECONDS)
    session.commit()
    pair_url = f"{app_config().public_base_url}/checkout#pair={code}"
    return {"code": code, "store": row.store, "expires_at": row.expires_at, "pair_url": pair_url,
            "qr_svg": qr_svg(pair_url)}
