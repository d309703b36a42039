"""Segments and campaigns: each segment with its count now, each campaign with its results; the owner adds a
segment (its rule as JSON, the API's shape), sends or schedules a campaign, and cancels one. Every change goes
through the domain behind `/api/v1/.../segments` and `/campaigns`, checked by the API's schemas."""

from __future__ import annotations

import json

from flask import g, request, url_for
from sqlalchemy import select

from app.api.campaign_schemas import CampaignIn, SegmentIn
from app.dashboard import bp
from app.dashboard.forms import FormError, load, number, save
from app.dashboard.rendering import locale, render
from app.dashboard.sessions import owner_only, signed_in
from app.domain import campaigns, programs, segments
from app.models import Program, utcnow
from app.pages.catalogue import t
from app.services import db_session


@bp.get("/campaigns")
@signed_in
def campaigns_page():
    session, now = db_session(), utcnow()
    found = session.scalars(select(Program).where(Program.merchant_id == g.user.merchant_id)
                            .order_by(Program.id)).all()
    sections = [{"program": program,
                 "segments": [(segment, segments.count_members(session, segment, now))
                              for segment in segments.program_segments(session, program)],
                 "campaigns": [(campaign, campaigns.results(session, campaign))
                               for campaign in campaigns.program_campaigns(session, program)[:20]]}
                for program in found]
    return render("dashboard/campaigns.html", sections=sections)


@bp.post("/programs/<int:program_id>/segments")
@signed_in
@owner_only
def create_segment(program_id: int):
    program = programs.get_program(db_session(), g.user.merchant_id, program_id)

    def change():
        try:
            rules = json.loads(request.form.get("rules") or "")
        except ValueError:
            raise FormError(t("dash.segments.bad_json", locale())) from None
        data = load(SegmentIn(), {"name": request.form.get("name", ""), "rules": rules})
        segments.create_segment(db_session(), program, data["name"], data["rules"])
    return save(change, t("dash.saved.segment", locale()), url_for("dashboard.campaigns_page"))


@bp.post("/programs/<int:program_id>/campaigns")
@signed_in
@owner_only
def create_campaign(program_id: int):
    program = programs.get_program(db_session(), g.user.merchant_id, program_id)
    form = request.form

    def change():
        body = {"name": form.get("name", ""), "segment_id": number(form.get("segment_id"))}
        if form.get("title") or form.get("body"):
            body["message"] = {"title": form.get("title", ""), "body": form.get("body", "")}
        if form.get("offer_text") or form.get("offer_ends_at"):
            body["offer"] = {"text": form.get("offer_text", ""), "ends_at": form.get("offer_ends_at", "")}
        if form.get("send_at"):
            body["send_at"] = form["send_at"]
        campaigns.create_campaign(db_session(), program, load(CampaignIn(), body), utcnow())
    return save(change, t("dash.saved.campaign", locale()), url_for("dashboard.campaigns_page"))


@bp.post("/campaigns/<int:campaign_id>/cancel")
@signed_in
@owner_only
def cancel_campaign(campaign_id: int):
    def change():
        campaign = campaigns.get_campaign(db_session(), g.user.merchant_id, campaign_id, lock=True)
        campaigns.cancel_campaign(db_session(), campaign, utcnow())
    return save(change, t("dash.saved.cancelled", locale()), url_for("dashboard.campaigns_page"))
