"""Choosing every member's offer again after a program's offer templates changed (app/domain/offer_templates.py):
one outbox event per change, delivered here after the change committed; cards whose offer changed are updated."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from app.domain.offer_templates import OFFERS_REFRESH, refresh_program
from app.models import OutboxEvent, Program, utcnow


def refresh_offers(app: Flask, session: Session, event: OutboxEvent) -> None:
    program = session.get(Program, event.program_id)
    if program is not None:
        refresh_program(session, program, utcnow(), event.payload.get("template_id"))
    session.commit()


HANDLERS = {OFFERS_REFRESH: refresh_offers}
