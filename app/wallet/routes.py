"""Apple's PassKit web service under PUBLIC_BASE_URL/wallet, paths and status codes as Apple specifies.

Devices authenticate with `Authorization: ApplePass <authenticationToken>` on register, unregister and pass
download; the serials list has no Authorization (the device library id is the secret). A wrong pass type, an
unknown serial and a wrong token all answer 401 alike, so nobody can probe which passes exist."""

from __future__ import annotations

import hmac
import re

from flask import Response, abort, request
from sqlalchemy import select

from app.cards import pkpass_response
from app.domain.devices import is_push_token, record_device_logs, register_device, unregister_device, updated_serials
from app.domain.ledger import lock_member
from app.domain.members import apply_personalization
from app.domain.passupdates import last_modified, unchanged_since
from app.models import Member, utcnow
from app.services import app_config, db_session, services
from app.untrusted import load_json, unstorable_fields
from app.wallet import bp
from passes.personalization import read_personalization

_UPDATE_TAG = re.compile(r"[0-9]{1,18}")  # ASCII digits only (str.isdigit() takes "²"), and below 2**63


@bp.post("/devices/<device_id>/registrations/<pass_type_id>/<serial>")
def register(device_id: str, pass_type_id: str, serial: str):
    """201 for a new registration, 200 when the device was already registered (its push token is updated)."""
    member = _authenticated_member(pass_type_id, serial)
    body = _json_body()
    push_token = body.get("pushToken") if isinstance(body, dict) else None
    if not is_push_token(push_token) or len(device_id) > 128:
        return _plain(400, "pushToken must be the device's hex push token")
    session = db_session()
    created = register_device(session, member, device_id, push_token, app_config().max_devices_per_pass)
    session.commit()
    return _plain(201 if created else 200)


@bp.delete("/devices/<device_id>/registrations/<pass_type_id>/<serial>")
def unregister(device_id: str, pass_type_id: str, serial: str):
    member = _authenticated_member(pass_type_id, serial)
    session = db_session()
    unregister_device(session, member, device_id)
    session.commit()
    return _plain(200)


@bp.get("/devices/<device_id>/registrations/<pass_type_id>")
def serials(device_id: str, pass_type_id: str):
    """Every pass of this device changed after the tag (all of them without one); 204 when there are none.
    `lastUpdated` never passes a change still in flight (`updated_serials`), so a pass may be listed twice."""
    since = request.args.get("passesUpdatedSince", "")
    since_tag = int(since) if _UPDATE_TAG.fullmatch(since) else 0  # not a tag we issued: as if none was sent
    if pass_type_id != app_config().apple.pass_type_id:
        return _plain(204)
    changed = updated_serials(db_session(), device_id, since_tag)
    if changed is None:
        return _plain(204)
    serial_numbers, last_tag = changed
    return {"serialNumbers": serial_numbers, "lastUpdated": str(last_tag)}


@bp.get("/passes/<pass_type_id>/<serial>")
def latest_pass(pass_type_id: str, serial: str):
    """The current pass, or 304 when the device surely holds it (`If-Modified-Since`)."""
    member = _authenticated_member(pass_type_id, serial)
    since = request.if_modified_since
    if since is not None and unchanged_since(member, since):
        response = _plain(304)
        response.last_modified = last_modified(member, utcnow())
        return response
    session = db_session()
    response = pkpass_response(session, member)
    session.commit()
    return response


@bp.post("/passes/<pass_type_id>/<serial>/personalize")
def personalize(pass_type_id: str, serial: str):
    """Apple's rewards enrollment: store the details the customer agreed to share, answer the signed token;
    Wallet then downloads the personalized pass (a new version, without the sign-up sheet)."""
    member = _member(pass_type_id, serial) if app_config().apple.personalization else None
    if member is None:
        return _plain(404)
    try:
        token, info = read_personalization(_json_body())
    except ValueError as error:
        return _plain(400, str(error))
    session = db_session()
    member = lock_member(session, member)  # an earn at the same moment must not be overwritten from a stale read
    if member.personalized_at is None:
        apply_personalization(session, member, info)
    session.commit()
    return Response(services().signer.sign(token.encode()), status=200, mimetype="application/octet-stream")


@bp.post("/log")
def device_log():
    """Devices report why an update failed here."""
    body = _json_body(keep_unstorable=True)  # lines are cleaned, not refused: they are all the device can tell us
    lines = body.get("logs") if isinstance(body, dict) else None
    if not isinstance(lines, list):
        return _plain(400, "logs must be a list of strings")
    session = db_session()
    record_device_logs(session, lines, app_config().retention.device_log_max_lines)
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


def _json_body(keep_unstorable: bool = False):
    """Devices' JSON, whatever Content-Type they send (Apple does not promise one); None when it is not JSON, is
    nested too deep, or (unless kept) holds text the database cannot store."""
    try:
        body = load_json(request.get_data(cache=True))
    except ValueError:
        return None
    return body if keep_unstorable or not unstorable_fields(body) else None


def _plain(status: int, text: str = "") -> Response:
    """Apple's clients read only the status; an empty body is what they expect."""
    return Response(text, status=status, mimetype="text/plain")
