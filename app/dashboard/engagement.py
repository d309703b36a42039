"""The program page's referrals and surveys: their figures, and (owner only) the referral settings, a new survey
and switching a survey on or off. Saves go through the same domain functions as the merchant API (`PATCH
/api/v1/programs/{id}` with `referrals`, `POST /api/v1/programs/{id}/surveys`, `PATCH /api/v1/surveys/{id}`),
checked by its schemas, so a refusal names the field as the API would."""

from __future__ import annotations

from flask import abort, g, request, url_for
from sqlalchemy.orm import Session

from app.api.engagement_schemas import SurveyIn, SurveyPatch
from app.api.schemas import ReferralSettingsIn
from app.dashboard import bp
from app.dashboard.forms import FormError, load, number, save
from app.dashboard.rendering import locale
from app.dashboard.sessions import owner_only, signed_in
from app.domain import programs, referrals, surveys
from app.domain.errors import DomainError, InvalidInput
from app.models import Program
from app.pages.catalogue import t
from app.services import db_session

TOP_REFERRERS = 5
SURVEY_QUESTION_ROWS = 5  # question rows in the new-survey form (the API takes up to 20)
CAP_FIELDS = ("max_per_referrer_per_day", "max_per_ip_per_day", "max_referrals")


def engagement_context(session: Session, program: Program) -> dict:
    """What `_engagement.html` shows: the program's referral settings and stats, and each survey with its
    results."""
    return {"referral_settings": referrals.active_settings(program) or {},
            "referral_triggers": referrals.TRIGGERS, "question_kinds": surveys.QUESTION_KINDS,
            "survey_question_rows": SURVEY_QUESTION_ROWS, "cap_fields": CAP_FIELDS,
            "referral_stats": referrals.program_stats(session, program, top=TOP_REFERRERS),
            "survey_results": [(survey, surveys.survey_results(session, survey))
                               for survey in surveys.surveys_of(session, program.id)]}


@bp.post("/programs/<int:program_id>/referrals")
@signed_in
@owner_only
def save_referrals(program_id: int):
    """Off (unticked) or the whole settings; an emptied cap is no cap. The referrer tiers (API only) are kept."""
    found = _program(program_id)
    form = request.form
    fields = None
    if form.get("enabled") == "on":
        kept_tiers = (found.referral_settings or {}).get("tiers") or []
        fields = {"trigger": form.get("trigger", ""),
                  "referrer_points": number(form.get("referrer_points")) or 0,
                  "referee_points": number(form.get("referee_points")) or 0,
                  **{name: _optional(form.get(name)) for name in ("within_days", *CAP_FIELDS)},
                  **({"tiers": [dict(tier) for tier in kept_tiers]} if kept_tiers else {})}

    def change():
        settings = load(ReferralSettingsIn(), fields) if fields is not None else None
        programs.update_program(db_session(), found, {"referrals": settings})
    return save(change, t("dash.saved.referrals", locale()), _back(program_id))


@bp.post("/programs/<int:program_id>/surveys")
@signed_in
@owner_only
def create_survey(program_id: int):
    """A question row with text is a question; a choice question's choices are comma-separated."""
    found = _program(program_id)
    form = request.form
    rows = zip(form.getlist("question_kind"), form.getlist("question_text"), form.getlist("question_choices"),
               strict=False)
    questions = [{"kind": kind, "text": text.strip(),
                  **({"choices": [c.strip() for c in choices.split(",") if c.strip()]} if kind == "choice" else {})}
                 for kind, text, choices in rows if text.strip()]
    fields = {"title": form.get("title", "").strip(), "questions": questions,
              "bonus_points": number(form.get("bonus_points")) or 0,
              "after_purchases": _optional(form.get("after_purchases"))}

    def change():
        try:
            surveys.create_survey(db_session(), found, load(SurveyIn(), fields))
        except InvalidInput as error:
            raise FormError(f"{_field_name(error.field)}: {error}") from None
    return save(change, t("dash.saved.survey", locale()), _back(program_id))


@bp.post("/surveys/<int:survey_id>/active")
@signed_in
@owner_only
def switch_survey(survey_id: int):
    """On or off (the form's `active`: true or false)."""
    try:
        survey = surveys.get_survey(db_session(), g.user.merchant_id, survey_id)
    except DomainError:
        abort(404)

    def change():
        switch = {"true": True, "false": False}.get(request.form.get("active", ""), request.form.get("active"))
        surveys.update_survey(db_session(), survey, load(SurveyPatch(), {"active": switch}))  # JSON true/false
    return save(change, t("dash.saved.survey", locale()), _back(survey.program_id))


def _program(program_id: int) -> Program:
    """The user's merchant's program; another merchant's is a 404."""
    try:
        return programs.get_program(db_session(), g.user.merchant_id, program_id)
    except DomainError:
        abort(404)


def _optional(text: str | None):
    """An emptied number field is null (no cap, not offered after purchases); anything else as `number`."""
    return number(text) if (text or "").strip() else None


def _field_name(field: str) -> str:
    """The domain's `questions.0.choices` as the schema refusals read: `questions: choices`."""
    return ": ".join(part for part in field.split(".") if not part.isdigit())


def _back(program_id: int) -> str:
    return url_for("dashboard.program", program_id=program_id)
