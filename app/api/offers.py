"""Personalised offers: a program's offer templates (admin) and the offer a member gets, with the reason."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.idempotency import idempotent_write
from app.api.offer_schemas import MemberOffers, OfferIn, OfferList, OfferOut, OfferPatch
from app.api.openapi import problems
from app.auth import ADMIN, POS, auth, current_caller
from app.domain import members, offer_templates, offers, programs
from app.models import OfferTemplate, utcnow
from app.services import db_session

bp = APIBlueprint("offers", __name__, url_prefix="/api/v1", tag="Offers")

PRECEDENCE = ("Active offers in order of priority (lower first), then the older one; the first that fits the member "
              "wins. top_category: the category with the most items in the window, equal counts to the "
              "alphabetically first. A member who fits none gets no offer (a default offer fits everyone).")


# The single offer's route comes first: /openapi.json names OfferOut before the list nests it.
@bp.post("/programs/<int:program_id>/offers")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(OfferIn, arg_name="data")
@bp.output(OfferOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def create_offer(program_id, data):
    """A new offer template; members' offers are chosen again right after (their cards update if theirs changed)."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    return offer_json(offer_templates.create_template(session, program, data), 0)


@bp.get("/programs/<int:program_id>/offers")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(OfferList)
@bp.doc(responses=problems(401, 403, 404))
def list_offers(program_id):
    """Every offer template, active ones first in precedence order, with how many cards show each now."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    counts = offer_templates.members_per_template(session, program)
    return {"data": [offer_json(template, counts.get(template.id, 0))
                     for template in offer_templates.list_templates(session, program)], "precedence": PRECEDENCE}


@bp.get("/programs/<int:program_id>/offers/<int:offer_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(OfferOut)
@bp.doc(responses=problems(401, 403, 404))
def get_offer(program_id, offer_id):
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    template = offer_templates.get_template(session, program, offer_id)
    return offer_json(template, offer_templates.members_per_template(session, program).get(template.id, 0))


@bp.patch("/programs/<int:program_id>/offers/<int:offer_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(OfferPatch, arg_name="data")
@bp.output(OfferOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def update_offer(program_id, offer_id, data):
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    template = offer_templates.get_template(session, program, offer_id)
    offer_templates.update_template(session, program, template, data)
    return offer_json(template, offer_templates.members_per_template(session, program).get(template.id, 0))


@bp.delete("/programs/<int:program_id>/offers/<int:offer_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.output({}, status_code=204)
@bp.doc(responses=problems(401, 403, 404))
def retire_offer(program_id, offer_id):
    """Retire: offered to nobody again and dropped from the cards showing it (kept, inactive, for history)."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    offer_templates.retire_template(session, program, offer_templates.get_template(session, program, offer_id))
    session.commit()
    return ""


@bp.get("/members/<int:member_id>/offers")
@bp.auth_required(auth, roles=POS)
@bp.output(MemberOffers)
@bp.doc(responses=problems(401, 404))
def member_offers(member_id):
    """The offer that fits the member now and why ("most-bought category: coffee, 7 of 12 items in 90 days"),
    every template's verdict, and what the card shows."""
    session = db_session()
    member = members.get_member(session, current_caller().merchant_id, member_id)
    found = offers.explain(session, member, utcnow())
    locales = list(member.program.locales or ())
    chosen, on_card = found["chosen"], found["on_card"]
    return {
        "chosen": _chosen_json(chosen, member.locale, locales) if chosen else None,
        "on_card": _on_card_json(on_card, member.locale, locales) if on_card and on_card.template.active else None,
        "evaluated": [{"offer_id": fit.template.id, "name": fit.template.name, "kind": fit.template.kind,
                       "priority": fit.template.priority, "fits": fit.fits, "why": fit.why}
                      for fit in found["evaluated"]],
        "precedence": PRECEDENCE,
    }


def _chosen_json(fit: offers.Fit, locale: str, locales: list) -> dict:
    label, text = offers.render(fit.template, fit.shown, locale, locales)
    return {"offer_id": fit.template.id, "name": fit.template.name, "kind": fit.template.kind, "label": label,
            "text": text, "why": fit.why}


def _on_card_json(row, locale: str, locales: list) -> dict:
    label, text = offers.render(row.template, row.shown, locale, locales)
    return {"offer_id": row.template_id, "label": label, "text": text, "chosen_at": row.chosen_at}


def offer_json(template: OfferTemplate, members_shown: int) -> dict:
    settings = {**offers.SETTINGS[template.kind], **(template.settings or {})}
    return {"id": template.id, "program_id": template.program_id, "name": template.name, "kind": template.kind,
            "priority": template.priority, "active": template.active, "rule": offers.describe(template),
            "texts": template.texts, "labels": template.labels or {}, **settings, "members": members_shown,
            "created_at": template.created_at}
