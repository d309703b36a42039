"""Google Wallet's public routes: no API key (the save link's token is the secret; callbacks are signed)."""

from __future__ import annotations

import logging
import time

from flask import Response, abort, redirect, request
from sqlalchemy import select

from app.domain import googlewallet
from app.domain.members import find_by_download_token
from app.errors import problem
from app.google import bp
from app.google.callbacks import CallbackKeysUnavailable, verified_callback
from app.google_cards import GOOGLE_IMAGES, loyalty_class, loyalty_object
from app.models import Program, ProgramImage
from app.services import app_config, db_session
from passes import default_images
from passes.google import save_jwt, save_url
from passes.google_callbacks import CallbackError

log = logging.getLogger(__name__)


@bp.get("/save/<token>")
def save(token: str):
    """`google_save_url`: a 302 to Google's "Save to Google Wallet" page. Once the member's object is inserted
    the JWT names it by id (a short link); until then it carries the whole object (and the class, if that is not
    inserted either), and the first visit queues the object's insertion, so later updates reach it."""
    config = app_config()
    if config.google is None or len(token) < 16:
        abort(404)
    session = db_session()
    member = find_by_download_token(session, token)
    if member is None:
        abort(404)
    row = googlewallet.start_object(session, member, config.google.issuer_id)
    if row.sent is not None:
        objects, classes = [{"id": row.object_id, "classId": row.sent["classId"]}], []
    else:
        objects = [loyalty_object(session, config, member)]
        class_row = googlewallet.class_row(session, member.program_id)
        inserted = class_row is not None and class_row.sent_version is not None
        classes = [] if inserted else [loyalty_class(session, config, member.program)]
    session.commit()
    token = save_jwt(config.google.service_account, origins=[config.public_base_url], issued_at=int(time.time()),
                     objects=objects, classes=classes)
    response = redirect(save_url(token), code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/programs/<int:program_id>/<any(logo, hero):image>.png")
def program_image(program_id: int, image: str):
    """The images a program's Google class shows; Google fetches them from here."""
    session = db_session()
    if app_config().google is None or session.get(Program, program_id) is None:
        abort(404)
    filename = GOOGLE_IMAGES[image]
    data = session.scalar(select(ProgramImage.data).where(ProgramImage.program_id == program_id,
                                                          ProgramImage.filename == filename))
    if data is None and image == "logo":
        data = default_images()[filename]
    if data is None:
        abort(404)
    response = Response(data, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.post("/callbacks")
def callbacks():
    """Google's save/delete callbacks (ECv2SigningOnly). 200 for every genuine callback, also a repeat (its nonce
    was seen) or one about an object we do not know; 400 for anything not signed by Google; 503 when Google's
    keys cannot be fetched (Google retries)."""
    google = app_config().google
    if google is None:
        abort(404)
    try:
        message = verified_callback(google, request.get_data(cache=False))
    except CallbackError as error:
        return problem(400, "Bad Request", f"Not a valid Google Wallet callback: {error}")
    except CallbackKeysUnavailable as error:
        log.warning("Google callback keys unavailable: %s", error)
        return problem(503, "Service Unavailable", "Google's signing keys could not be fetched; retry later.")
    session = db_session()
    if googlewallet.first_time_nonce(session, message["nonce"]):
        member = googlewallet.member_of_object(session, message["objectId"])
        if member is not None:
            googlewallet.record_saved(session, member, message["eventType"] == "save")
    session.commit()
    return {"status": "ok"}

