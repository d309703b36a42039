"""A program's offer templates: create, change, retire (kept, like rewards, while cards may still show them),
and choosing every member's offer again, in batches, after a template changed (an outbox event) or daily (the
scheduled job). The rules themselves are in app/domain/offers.py."""

from __future__ import annotations

import string
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.errors import InvalidInput, NotFound
from app.domain.many_cards import cards_changed
from app.domain.offers import DEFAULT_PRIORITY, PLACEHOLDERS, SETTINGS, active_templates, choose, facts_for, keep_choice
from app.domain.programs import lock_program
from app.models import Member, MemberOffer, OfferTemplate, OutboxEvent, Program
from passes.strings import LOCALES

OFFERS_REFRESH = "offers_refresh"  # outbox: choose again for a program's members after its templates changed
BATCH = 1000


def get_template(session: Session, program: Program, template_id: int) -> OfferTemplate:
    template = session.get(OfferTemplate, template_id)
    if template is None or template.program_id != program.id:
        raise NotFound(f"No offer {template_id}.")
    return template


def list_templates(session: Session, program: Program) -> list[OfferTemplate]:
    """Active first, then by precedence."""
    return sorted(session.scalars(select(OfferTemplate).where(OfferTemplate.program_id == program.id)),
                  key=lambda template: (not template.active, template.priority, template.id))


def create_template(session: Session, program: Program, data: dict) -> OfferTemplate:
    kind = data["kind"]
    template = OfferTemplate(program_id=program.id, kind=kind, name=data["name"], settings={}, labels={},
                             priority=DEFAULT_PRIORITY[kind], active=True)
    _apply(template, data)
    session.add(template)
    session.flush()
    _templates_changed(session, program, template)
    return template


def update_template(session: Session, program: Program, template: OfferTemplate, data: dict) -> OfferTemplate:
    if data.get("kind", template.kind) != template.kind:
        raise InvalidInput("kind", "A template's kind cannot change: create another one.")
    _apply(template, data)
    session.flush()
    _templates_changed(session, program, template)
    return template


def retire_template(session: Session, program: Program, template: OfferTemplate) -> None:
    """No member is offered it again; cards showing it drop it when the program's offers are chosen again."""
    template.active = False
    session.flush()
    _templates_changed(session, program, template)


def _apply(template: OfferTemplate, data: dict) -> None:
    for name in ("name", "priority", "active"):
        if name in data:
            setattr(template, name, data[name])
    for name in {name for settings in SETTINGS.values() for name in settings} - set(SETTINGS[template.kind]):
        if name in data:
            raise InvalidInput(name, f"A {template.kind} offer has no {name}.")
    settings = {**SETTINGS[template.kind], **(template.settings or {})}
    settings.update({name: data[name] for name in SETTINGS[template.kind] if name in data})
    template.settings = settings
    if "texts" in data:
        template.texts = _texts("texts", data["texts"], PLACEHOLDERS[template.kind])
    if "labels" in data:
        template.labels = _texts("labels", data["labels"], set())
    if not template.texts:
        raise InvalidInput("texts", "Give the offer's text in at least one language.")


def _texts(name: str, texts: dict, placeholders: set[str]) -> dict:
    """Known locales, and only the placeholders the kind fills ({category}, {days}, {points}, {tier})."""
    for locale, text in texts.items():
        if locale not in LOCALES:
            raise InvalidInput(f"{name}.{locale}", f"Unknown locale: one of {', '.join(LOCALES)}.")
        try:
            used = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
        except ValueError:
            raise InvalidInput(f"{name}.{locale}", "Unbalanced { or }: write {{ and }} for the characters.") from None
        unknown = used - placeholders
        if unknown:
            offered = ", ".join(f"{{{p}}}" for p in sorted(placeholders)) or "none"
            raise InvalidInput(f"{name}.{locale}", f"Unknown placeholder {{{sorted(unknown)[0]}}}; "
                                                   f"this kind of offer fills: {offered}.")
    return dict(texts)


def _templates_changed(session: Session, program: Program, template: OfferTemplate) -> None:
    """Offers are on when any template is active; every member's offer is chosen again after commit."""
    program = lock_program(session, program)
    program.offers_active = bool(session.scalar(select(func.count()).select_from(OfferTemplate).where(
        OfferTemplate.program_id == program.id, OfferTemplate.active.is_(True))))
    session.add(OutboxEvent(kind=OFFERS_REFRESH, program_id=program.id, payload={"template_id": template.id}))


def refresh_program(session: Session, program: Program, now: datetime, changed_template: int | None = None) -> int:
    """Choose every member's offer again; members whose offer changed (or who hold `changed_template`, whose
    text may have changed) get a card update. Returns how many cards changed."""
    templates = active_templates(session, program.id)
    changed: list[int] = []
    after = 0
    while True:
        members = list(session.scalars(select(Member).where(Member.program_id == program.id, Member.id > after,
                                                            Member.deleted_at.is_(None))
                                       .order_by(Member.id).limit(BATCH)))
        if not members:
            break
        after = members[-1].id
        changed += _refresh_batch(session, members, templates, now, changed_template)
    cards_changed(session, program, changed)
    return len(changed)


def _refresh_batch(session: Session, members: list[Member], templates: list[OfferTemplate], now: datetime,
                   changed_template: int | None) -> list[int]:
    """The batch's members whose card must change."""
    facts = facts_for(session, members, templates, now) if templates else {}
    current = {row.member_id: row for row in session.scalars(
        select(MemberOffer).where(MemberOffer.member_id.in_([member.id for member in members])))}
    changed = []
    for member in members:
        held = current.get(member.id)
        fit = choose(templates, facts[member.id])[0] if templates else None
        touched = held is not None and held.template_id == changed_template
        if keep_choice(session, member, fit, now, held) or touched:
            changed.append(member.id)
    session.flush()
    return changed


def refresh_all(session: Session, as_of: datetime) -> dict[str, int]:
    """The daily job: every program with offers (or with cards still showing one)."""
    programs = session.scalars(select(Program).where(
        Program.offers_active.is_(True) | Program.id.in_(select(MemberOffer.program_id).distinct())))
    return {"cards": sum(refresh_program(session, program, as_of) for program in list(programs))}


def members_per_template(session: Session, program: Program) -> dict[int, int]:
    """How many members' cards show each template now."""
    return dict(session.execute(select(MemberOffer.template_id, func.count()).where(
        MemberOffer.program_id == program.id).group_by(MemberOffer.template_id)).all())


