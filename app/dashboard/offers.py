"""A program's offers (the templates, their rules in plain words, how many cards show each now; the owner creates,
edits and retires them through the domain behind `/api/v1/programs/{id}/offers`, checked by its schemas) and its
locations (form rows on the program page: dashboard/_locations.html). Saves go through the same domain function
as the merchant API (`PUT /api/v1/programs/{id}/locations`), checked by its schemas."""

from __future__ import annotations

from flask import request, url_for

from app.api.location_schemas import LocationIn
from app.api.offer_schemas import OfferIn, OfferPatch
from app.dashboard import bp
from app.dashboard.forms import FormError, load, number, save
from app.dashboard.programs import _program
from app.dashboard.rendering import locale, render
from app.dashboard.sessions import owner_only, signed_in
from app.domain import offer_templates, offers, relevance
from app.domain.offers import KINDS
from app.pages.catalogue import t
from app.services import db_session
from passes.relevance import MAX_LOCATIONS
from passes.strings import LOCALES


@bp.get("/programs/<int:program_id>/offers")
@signed_in
def program_offers(program_id: int):
    session, found = db_session(), _program(program_id)
    counts = offer_templates.members_per_template(session, found)
    rows = [(template, offers.describe(template), counts.get(template.id, 0))
            for template in offer_templates.list_templates(session, found)]
    return render("dashboard/offers.html", program=found, rows=rows, kinds=KINDS, locales=found.locales or LOCALES)


# The numbers each kind takes (the API's fields); a blank one keeps the kind's default.
_KIND_NUMBERS = {"top_category": ("window_days", "min_purchases"), "we_miss_you": ("days",),
                 "next_tier": ("within_points",), "default": ()}


@bp.post("/programs/<int:program_id>/offers")
@signed_in
@owner_only
def create_offer(program_id: int):
    found, form = _program(program_id), request.form
    kind = form.get("kind", "")
    body = {"name": form.get("name", "").strip(), "kind": kind, **_texts_and_priority(found)}
    for field in _KIND_NUMBERS.get(kind, ()):
        if form.get(field, "").strip():
            body[field] = number(form[field])
    categories = [c.strip() for c in form.get("categories", "").split(",") if c.strip()]
    if kind == "top_category" and categories:
        body["categories"] = categories

    def change():
        offer_templates.create_template(db_session(), found, load(OfferIn(), body))
    return save(change, t("dash.saved.offer", locale()), url_for("dashboard.program_offers", program_id=program_id))


@bp.post("/programs/<int:program_id>/offers/<int:offer_id>")
@signed_in
@owner_only
def update_offer(program_id: int, offer_id: int):
    """The texts and the priority (a blank priority is left as it is)."""
    found = _program(program_id)
    body = {key: value for key, value in _texts_and_priority(found).items() if value}

    def change():
        session = db_session()
        template = offer_templates.get_template(session, found, offer_id)
        offer_templates.update_template(session, found, template, load(OfferPatch(), body))
    return save(change, t("dash.saved.offer", locale()), url_for("dashboard.program_offers", program_id=program_id))


@bp.post("/programs/<int:program_id>/offers/<int:offer_id>/retire")
@signed_in
@owner_only
def retire_offer(program_id: int, offer_id: int):
    """Like the API's DELETE: kept, inactive, and dropped from the cards showing it."""
    found = _program(program_id)

    def change():
        session = db_session()
        offer_templates.retire_template(session, found, offer_templates.get_template(session, found, offer_id))
    return save(change, t("dash.saved.offer_retired", locale()),
                url_for("dashboard.program_offers", program_id=program_id))


def _texts_and_priority(found) -> dict:
    """The form's per-locale texts (blank ones left out) and priority (if given), in the API's shape."""
    form = request.form
    body = {"texts": {code: form[f"text_{code}"].strip() for code in found.locales or LOCALES
                      if form.get(f"text_{code}", "").strip()}}
    if form.get("priority", "").strip():
        body["priority"] = number(form["priority"])
    return body


@bp.post("/programs/<int:program_id>/locations")
@signed_in
@owner_only
def save_locations(program_id: int):
    """Every row with a name is a location; an emptied name removes it. The beacons (API only) are kept."""
    found = _program(program_id)
    columns = [request.form.getlist(name) for name in ("name", "latitude", "longitude")]
    texts = {code: request.form.getlist(f"text_{code}") for code in found.locales or LOCALES}
    rows = [{"name": name.strip(), "latitude": _decimal(lat), "longitude": _decimal(lng),
             "relevant_text": {code: lines[n].strip() for code, lines in texts.items()
                               if n < len(lines) and lines[n].strip()}}
            for n, (name, lat, lng) in enumerate(zip(*columns, strict=False)) if name.strip()]

    def change():
        if len(rows) > MAX_LOCATIONS:
            raise FormError(t("dash.locations.too_many", locale(), count=MAX_LOCATIONS))
        relevance.set_relevance(db_session(), found, load(LocationIn(many=True), rows), list(found.beacons or []))
    return save(change, t("dash.saved.locations", locale()), url_for("dashboard.program", program_id=program_id))


def _decimal(text: str):
    """A coordinate as the number the API's schema expects; anything else is passed on for it to refuse."""
    try:
        return float(text.strip())
    except ValueError:
        return text
