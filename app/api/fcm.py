"""Notifications through the merchant's own app (admin keys): the app's FCM tokens per member, and the
merchant's Firebase key. Sending is the workers' (workers/fcm.py)."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.schemas import DeviceIn, DeviceOut, DevicePath, FcmCredentialsIn, FcmCredentialsOut
from app.auth import ADMIN, auth, current_caller
from app.config import FCM_GOOGLE_URL
from app.domain import fcm, members
from app.domain.errors import InvalidInput, NotFound
from app.services import app_config, db_session
from passes.google import GOOGLE_TOKEN_URI, ServiceAccount, ServiceAccountError

bp = APIBlueprint("fcm", __name__, url_prefix="/api/v1", tag="App notifications (FCM)")


@bp.post("/members/<int:member_id>/devices")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(DeviceIn, arg_name="data")
@bp.output(DeviceOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def register_device(member_id, data):
    """Register the merchant app's FCM token for this member. Idempotent: the same token again answers the same
    device; a token registered to another member of the merchant moves to this one."""
    session = db_session()
    member = members.get_member(session, current_caller().merchant_id, member_id)
    return fcm.register_device(session, member, data["token"], data["platform"])


@bp.delete("/members/<int:member_id>/devices/<token>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(DevicePath, location="path", arg_name="path")
@bp.output({}, status_code=204)
@bp.doc(responses=problems(400, 401, 403, 404, 422))
def remove_device(member_id, token, path):
    """Forget the token (the member signed out of the app); a token the member does not have is no error."""
    session = db_session()
    fcm.remove_device(session, members.get_member(session, current_caller().merchant_id, member_id), token)
    return ""


@bp.put("/fcm/credentials")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(FcmCredentialsIn, arg_name="data")
@bp.output(FcmCredentialsOut)
@bp.doc(responses=problems(400, 401, 403, 413, 422))
def put_credentials(data):
    """Upload the service-account key of the merchant's Firebase project; its app's tokens are sent with it.
    Stored encrypted and never returned: the answer shows the project and the account only."""
    try:
        account = ServiceAccount.from_info(data)
    except ServiceAccountError as error:
        raise InvalidInput(error.field, f"Not a usable service-account key: {error.reason}.") from None
    if account.token_uri != GOOGLE_TOKEN_URI and app_config().fcm.base_url == FCM_GOOGLE_URL:
        # our worker posts a signed assertion there: only to Google, unless this instance talks to a fake
        raise InvalidInput("token_uri", f"Must be Google's token endpoint, {GOOGLE_TOKEN_URI}.")
    merchant_id = current_caller().merchant_id
    return fcm.save_credentials(db_session(), merchant_id, account, app_config().fcm.credentials_secret)


@bp.get("/fcm/credentials")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(FcmCredentialsOut)
@bp.doc(responses=problems(401, 403, 404))
def get_credentials():
    """Which Firebase project the merchant's key is for; 404 when the merchant uploaded none."""
    row = fcm.get_credentials(db_session(), current_caller().merchant_id)
    if row is None:
        raise NotFound("No FCM credentials uploaded; the instance's (if any) are used.")
    return row


@bp.delete("/fcm/credentials")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.output({}, status_code=204)
@bp.doc(responses=problems(400, 401, 403))
def delete_credentials():
    """Remove the merchant's key; the instance's key (if configured) is used from now on."""
    fcm.delete_credentials(db_session(), current_caller().merchant_id)
    return ""
