"""Form input checked by the merchant API's own schemas and domain, so a rule lives in one place: what the
dashboard refuses, the API refuses too, with the same message."""

from __future__ import annotations

from flask import g, redirect
from marshmallow import Schema, ValidationError

from app.dashboard.rendering import respond
from app.domain.errors import DomainError
from app.services import db_session


class FormError(Exception):
    """What to tell the user: the field and the (API's) message."""

    def __init__(self, message: str):
        super().__init__(message)


def load(schema: Schema, data: dict) -> dict:
    """`data` through the API's schema; a refusal becomes a FormError naming each field."""
    try:
        return schema.load(data)
    except ValidationError as error:
        raise FormError(_describe(error.messages)) from None


def number(text: str | None):
    """A form field as the whole number the API's schema expects; anything else is passed on for it to refuse."""
    text = (text or "").strip()
    return int(text) if text.lstrip("-").isdigit() and len(text) < 12 else text


def save(change, done_message: str, back: str):
    """Run `change()` (domain calls), commit, and go back to `back` with a note (kept in the session cookie for
    the next page); a domain refusal or a FormError rolls back and goes back with the reason."""
    session = db_session()
    try:
        result = change()
    except (DomainError, FormError) as error:
        session.rollback()
        g.session["note"] = ["error", str(error)]
        return respond(redirect(back, 303), g.session)
    session.commit()
    g.session["note"] = ["ok", done_message.format(result=result) if result is not None else done_message]
    return respond(redirect(back, 303), g.session)


def _describe(messages, prefix: str = "") -> str:
    if isinstance(messages, dict):
        return " ".join(_describe(value, f"{prefix}{key}: " if not str(key).isdigit() else prefix)
                        for key, value in messages.items())
    if isinstance(messages, list):
        return " ".join(_describe(item, prefix) for item in messages)
    return f"{prefix}{messages}"
