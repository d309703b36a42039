"""Checks every merchant-API request runs before any database work: a JSON body that is malformed or too deep is
400, text the database cannot store (in the body or the query string) is 422 naming the field."""

from __future__ import annotations

from flask import request

from app.errors import problem
from app.untrusted import is_storable, load_json, scrub, unstorable_fields

_UNSTORABLE = "Must not contain NUL characters or unpaired surrogates."


def refuse_unusable_input():
    """A `before_request` hook: returns a problem to answer instead of the view, or None to go on."""
    bad = [f"query.{scrub(name)}" for name, value in request.args.items(multi=True)
           if not (is_storable(name) and is_storable(value))]
    data = request.get_data(cache=True) if request.is_json else b""
    if data:
        try:
            body = load_json(data)
        except ValueError as error:
            return problem(400, "Malformed JSON", f"The request body is not usable JSON: {error}")
        bad += unstorable_fields(body)
    if bad:
        return problem(422, "Validation failed", "Some fields are missing or invalid.",
                       {name: [_UNSTORABLE] for name in bad})
    return None
