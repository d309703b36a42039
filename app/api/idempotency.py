"""`Idempotency-Key` for writes: the first successful response is stored in the same transaction as the work and
replayed verbatim for a retry; the same key with a different request is 422.

Scope is (merchant, method + route). The key is not looked up before the work: the happy path is one INSERT,
and a retry does the work again, hits the unique constraint at commit, rolls back and replays (a refused or
failed retry looks the key up too). Only successes are stored: a refused or invalid request wrote nothing, so
retrying it is safe and may succeed later. Concurrent duplicates: the loser's insert of the record hits the unique
constraint, its work is rolled back, and it replays the winner's response; any other unique violation at commit
is a 409."""

from __future__ import annotations

import hashlib
import json
from functools import wraps

from flask import make_response, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth import current_caller
from app.db import insert_row
from app.errors import problem
from app.models import IdempotencyRecord
from app.services import db_session

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def idempotent_write(view):
    """Commit the view's work, together with the stored response when the request carries a key."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        session = db_session()
        if key is None:
            response = make_response(view(*args, **kwargs))
            session.commit()
            return response
        if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            return problem(400, "Bad Idempotency-Key", f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
                           {HEADER: ["Invalid length or a control character."]})
        scope = dict(merchant_id=current_caller().merchant_id, endpoint=_endpoint(), key=key)
        fingerprint = _fingerprint()
        try:  # no look-up first: a known key is rare, and the record's unique constraint catches it at commit
            response = make_response(view(*args, **kwargs))
        except Exception:
            stored = _stored_after_failure(session, scope)
            if stored is None:
                raise
            return _replay(stored, fingerprint)
        if not 200 <= response.status_code < 300:
            stored = _stored_after_failure(session, scope)
            return response if stored is None else _replay(stored, fingerprint)
        try:
            session.flush()  # the view's pending rows first: a conflict among them is a 409, as below
            insert_row(session, IdempotencyRecord(**scope, request_hash=fingerprint, status_code=response.status_code,
                                                  response_body=response.get_data(as_text=True)))
            session.commit()
        except IntegrityError:
            session.rollback()
            stored = _find(session, scope)
            return _conflict() if stored is None else _replay(stored, fingerprint)
        return response
    return wrapper


def _conflict():
    """The commit broke a unique rule other than the key's (two requests creating the same thing): nothing was
    written, and there is no first response to replay."""
    return problem(409, "Conflict", "This conflicts with a change made at the same moment; nothing was written.")


def _endpoint() -> str:
    return f"{request.method} {request.url_rule.rule if request.url_rule else request.path}"


def _fingerprint() -> str:
    """Path plus what the request says, not how it was encoded: canonical JSON (key order and whitespace don't
    count), or for a form its fields and each file's name and SHA-256 (a multipart boundary is new on every
    send, so the raw body of a retried upload never matches)."""
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        canonical = json.dumps({"form": sorted(request.form.items(multi=True)),
                                "files": sorted((field, upload.filename or "", _sha256(upload))
                                                for field, upload in request.files.items(multi=True))})
    else:
        body = request.get_json(silent=True)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")) if body is not None \
            else request.get_data(as_text=True)
    return hashlib.sha256(f"{request.path}\n{canonical}".encode()).hexdigest()


def _sha256(upload) -> str:
    """Hash the uploaded file and rewind it for the view."""
    digest = hashlib.file_digest(upload.stream, "sha256").hexdigest()
    upload.stream.seek(0)
    return digest


def _stored_after_failure(session, scope: dict) -> IdempotencyRecord | None:
    """The view refused (or raised): nothing it did is kept. A stored response for the key still answers, as
    it would have before the view ran (a retried redeem whose points are spent since replays its success)."""
    session.rollback()
    return _find(session, scope)


def _find(session, scope: dict) -> IdempotencyRecord | None:
    return session.scalar(select(IdempotencyRecord).filter_by(**scope))


def _replay(stored: IdempotencyRecord, fingerprint: str):
    if stored.request_hash != fingerprint:
        return problem(422, "Idempotency-Key reused",
                       f"This {HEADER} was already used for a different request; use a new key for a new "
                       "request.", {HEADER: ["Already used with a different request body or path."]})
    response = make_response(stored.response_body, stored.status_code)
    response.mimetype = "application/json"
    response.headers["Idempotent-Replayed"] = "true"
    return response
