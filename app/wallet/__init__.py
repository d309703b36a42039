"""Apple's PassKit web service under PUBLIC_BASE_URL/wallet, paths and status codes as Apple specifies.

Devices authenticate with `Authorization: ApplePass <authenticationToken>` on register, unregister and pass
download; the serials list has no Authorization (the device library id is the secret). A wrong pass type, an
unknown serial and a wrong token all answer 401 alike, so nobody can probe which passes exist."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import delete, or_, select

from app import app_config, db_session
from app.cards import pkpass_response
from app.domain.devices import is_push_token
from app.domain.members import apply_personalization
from app.models import DeviceLog, DeviceRegistration, Member, Program
from passes.personalization import read_personalization

bp = Blueprint("wallet", __name__, url_prefix="/wallet/v1")
log = logging.getLogger("punchpass.wallet")
MAX_LOG_LINES, MAX_LOG_LINE = 50, 1000


@bp.post("/devices/<device_id>/registrations/<pass_type_id>/<serial>")
def register(device_id: str, pass_type_id: str, serial: str):
    """201 for a new registration, 200 when the device was already registered (its push token is updated)."""
    member = _authenticated_member(pass_type_id, serial)
    body = request.get_json(silent=True)
    push_token = body.get("pushToken") if isinstance(body, dict) else None
    if not is_push_token(push_token) or len(device_id) > 128:
        return _plain(400, "pushToken must be the device's hex push token")
    session = db_session()
    existing = session.scalar(select(DeviceRegistration).where(
        DeviceRegistration.device_library_id == device_id, DeviceRegistration.member_id == member.id))
    if existing is not None:
        existing.push_token = push_token
        session.commit()
        return _plain(200)
    session.add(DeviceRegistration(device_library_id=device_id, push_token=push_token, member_id=member.id))
    session.commit()
    return _plain(201)


@bp.delete("/devices/<device_id>/registrations/<pass_type_id>/<serial>")
def unregister(device_id: str, pass_type_id: str, serial: str):
    member = _authenticated_member(pass_type_id, serial)
    session = db_session()
    session.execute(delete(DeviceRegistration).where(DeviceRegistration.device_library_id == device_id,
                                                     DeviceRegistration.member_id == member.id))
    session.commit()
    return _plain(200)


@bp.get("/devices/<device_id>/registrations/<pass_type_id>")
def updated_serials(device_id: str, pass_type_id: str):
    """Every pass of this device changed after the tag (all of them without one); 204 when there are none."""
    since = request.args.get("passesUpdatedSince", "")
    since_tag = int(since) if since.isdigit() else 0
    if pass_type_id != app_config().apple.pass_type_id:
        return _plain(204)
    rows = db_session().execute(
        select(Member.serial_number, Member.pass_update_tag, Program.design_update_tag)
        .join(DeviceRegistration, DeviceRegistration.member_id == Member.id)
        .join(Program, Program.id == Member.program_id)
        .where(DeviceRegistration.device_library_id == device_id,
               or_(Member.pass_update_tag > since_tag, Program.design_update_tag > since_tag))).all()
    if not rows:
        return _plain(204)
    last = max(max(member_tag, design_tag) for _, member_tag, design_tag in rows)
    return {"serialNumbers": [serial for serial, _, _ in rows], "lastUpdated": str(last)}


@bp.get("/passes/<pass_type_id>/<serial>")
def latest_pass(pass_type_id: str, serial: str):
    """The current pass, or 304 when it has not changed since `If-Modified-Since`."""
    member = _authenticated_member(pass_type_id, serial)
    since = request.if_modified_since
    if since is not None and member.card_modified_at.replace(microsecond=0) <= since:
        response = _plain(304)
        response.last_modified = member.card_modified_at
        return response
    return pkpass_response(db_session(), member)


@bp.post("/passes/<pass_type_id>/<serial>/personalize")
def personalize(pass_type_id: str, serial: str):
    """Apple's rewards enrollment: store the details the customer agreed to share, answer the signed token;
    Wallet then downloads the personalized pass (a new version, without the sign-up sheet)."""
    member = _member(pass_type_id, serial) if app_config().apple.personalization else None
    if member is None:
        return _plain(404)
    try:
        token, info = read_personalization(request.get_json(silent=True))
    except ValueError as error:
        return _plain(400, str(error))
    session = db_session()
    if member.personalized_at is None:
        apply_personalization(session, member, info)
        session.commit()
    signature = current_app.extensions["punchpass"]["signer"].sign(token.encode())
    return Response(signature, status=200, mimetype="application/octet-stream")


@bp.post("/log")
def device_log():
    """Devices report why an update failed here; kept short and bounded so it cannot fill the database."""
    body = request.get_json(silent=True)
    lines = body.get("logs") if isinstance(body, dict) else None
    if not isinstance(lines, list):
        return _plain(400, "logs must be a list of strings")
    session = db_session()
    for line in lines[:MAX_LOG_LINES]:
        message = str(line)[:MAX_LOG_LINE]
        log.warning("device log: %s", message)
        session.add(DeviceLog(message=message))
    session.commit()
    return _plain(200)


def _authenticated_member(pass_type_id: str, serial: str) -> Member:
    """The pass whose token the device presented; 401 for anything else, compared in constant time."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    member = _member(pass_type_id, serial)
    expected = member.auth_token if member is not None else "x" * 32
    if scheme != "ApplePass" or not hmac.compare_digest(token.strip().encode(), expected.encode()) \
            or member is None:
        abort(_plain(401))
    return member


def _member(pass_type_id: str, serial: str) -> Member | None:
    if pass_type_id != app_config().apple.pass_type_id:
        return None
    return db_session().scalar(select(Member).where(Member.serial_number == serial))


def _plain(status: int, text: str = "") -> Response:
    """Apple's clients read only the status; an empty body is what they expect."""
    return Response(text, status=status, mimetype="text/plain")
