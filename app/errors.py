"""Every error leaves as RFC 9457 `application/problem+json`: status, title, detail and, for bad input,
`errors` keyed by the field name."""

from __future__ import annotations

import logging

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from app.domain.errors import Conflict, DomainError, Forbidden, InsufficientPoints, InvalidInput, NotFound

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)

_DOMAIN_STATUS = {NotFound: 404, InsufficientPoints: 409, Conflict: 409, InvalidInput: 422, Forbidden: 403}


def problem(status: int, title: str, detail: str | None = None, errors: dict | None = None,
            headers: dict | None = None) -> Response:
    body = {"type": "about:blank", "status": status, "title": title}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def apiflask_error_processor(error) -> Response:
    """APIFlask's validation and `abort` errors; marshmallow's nested detail is flattened to field -> messages."""
    errors = _field_errors(error.detail) if error.status_code in (400, 422) and error.detail else None
    detail = "Some fields are missing or invalid." if errors else (error.message if error.message else None)
    title = "Validation failed" if errors else _title(error.status_code, error.message)
    return problem(error.status_code, title, detail, errors, dict(error.headers or {}))


def _domain_error(error: DomainError) -> Response:
    status = next((code for cls, code in _DOMAIN_STATUS.items() if isinstance(error, cls)), 400)
    errors = {error.field: [str(error)]} if isinstance(error, InvalidInput) else None
    return problem(status, error.title, str(error), errors)


def _http_error(error: HTTPException) -> Response:
    return problem(error.code or 500, error.name, error.description, headers=_allow_header(error))


def _unexpected_error(error: Exception) -> Response:
    log.exception("unhandled error")
    return problem(500, "Internal Server Error", "Something went wrong on our side; nothing was changed.")


def _field_errors(detail: dict) -> dict:
    """{'json': {'tiers': {0: {'name': [...]}}}} -> {'tiers.0.name': [...]}; the location is kept as a prefix only
    for headers and query (the body's fields and path parameters such as `kind` are named alone)."""
    flat: dict = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix or "_schema"] = node if isinstance(node, list) else [str(node)]

    for location, fields in detail.items():
        walk("" if location in ("json", "form", "files", "path") else location, fields)
    return flat


def _title(status: int, message: str | None) -> str:
    return HTTP_STATUS_CODES.get(status, message or "Error")


def _allow_header(error: HTTPException) -> dict:
    headers = dict(error.get_headers() or [])
    return {"Allow": headers["Allow"]} if "Allow" in headers else {}
