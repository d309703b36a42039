"""What /openapi.json says beyond the request and response schemas: every error an operation can answer, each
as `application/problem+json` with one Problem schema, and the rate limit every API route may answer with.

Routes list their errors with `@bp.doc(responses=problems(...))`; `document_api` (a spec processor) adds the
Problem schema, the 429 every /api/ operation can answer, the "exactly one of" rules marshmallow checks in code,
and marks request bodies required."""

from __future__ import annotations

from app.api.schemas import EXACTLY_ONE
from app.errors import PROBLEM_JSON
from app.untrusted import STORABLE_TEXT_PATTERN

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "`about:blank`: the status and title say it all"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong, for a person"},
        "errors": {"type": "object", "description": "For bad input: messages per field (`tiers.0.name`)",
                   "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
}
_DESCRIPTIONS = {
    400: "Malformed request: a body that is not JSON, or a bad Idempotency-Key",
    401: "No API key, or an unknown or revoked one",
    403: "The API key's scope does not allow this (a pos key on an admin route)",
    404: "No such object for this merchant (another merchant's objects are 404 too)",
    409: "Conflicts with the current state (too few points, already reversed, a duplicate)",
    413: "The body is larger than the server accepts",
    422: "Invalid input: `errors` names each field; or an Idempotency-Key reused for another request",
    429: "Too many requests: wait for Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again",
                                "schema": {"type": "integer", "minimum": 0}}}


def problems(*statuses: int) -> dict:
    """Responses for `@bp.doc(responses=...)`: each status as a problem+json Problem."""
    return {status: _problem_response(status) for status in statuses}


def _problem_response(status: int) -> dict:
    response = {"description": _DESCRIPTIONS[status],
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if status == 429:
        response["headers"] = _RETRY_AFTER
    return response


def document_api(spec: dict) -> dict:
    """Rate limiting applies to every API key, so every /api/ operation may answer 429; a body is required where
    an empty one is refused (a PATCH or a full reverse may send none); bodies that take exactly one of two
    fields say so."""
    schemas = spec["components"].setdefault("schemas", {})
    schemas["Problem"] = PROBLEM
    for name, groups in EXACTLY_ONE.items():
        rules = [{"oneOf": [{"required": [field]} for field in fields]} for fields in groups]
        schemas[name].update(rules[0] if len(rules) == 1 else {"allOf": rules})
    for schema in schemas.values():
        _storable_strings(schema)
    for path, item in spec["paths"].items():
        for operation in item.values():
            if path.startswith("/api/"):
                operation["responses"]["429"] = _problem_response(429)
            if "requestBody" in operation:
                operation["requestBody"]["required"] = _refuses_empty(spec, operation["requestBody"])
            for parameter in operation.get("parameters", ()):  # query text is refused the same way (app/api/guard.py)
                _storable_strings({"properties": {"parameter": parameter.get("schema", {})}})
    return spec


def _storable_strings(schema: dict) -> None:
    """Free-text string properties say what app/untrusted.py refuses (422): text with a NUL."""
    for prop in schema.get("properties", {}).values():
        target = prop.get("items", prop)
        kind = target.get("type")
        is_text = kind == "string" or isinstance(kind, list) and "string" in kind  # ["string", "null"] too
        if is_text and not ({"pattern", "enum", "format"} & target.keys()):
            target["pattern"] = STORABLE_TEXT_PATTERN
        _storable_strings(target)


def _refuses_empty(spec: dict, body: dict) -> bool:
    """A missing body reads as `{}`: it is refused when the schema requires a field or one of two."""
    schema = next(iter(body["content"].values()))["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return bool(schema.get("required") or schema.get("oneOf") or schema.get("allOf"))
