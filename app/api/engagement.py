"""Referral stats and surveys (issue 14). Referral settings themselves are part of the program (PATCH program,
`referrals`)."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.engagement_schemas import (
    InvitationOut,
    MemberReferralsOut,
    ProgramReferralStatsOut,
    SendSurveyIn,
    SurveyIn,
    SurveyList,
    SurveyOut,
    SurveyPatch,
    SurveyResultsOut,
)
from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.schemas import PageQuery
from app.auth import ADMIN, auth, current_caller
from app.domain import ledger, members, programs, referrals, surveys
from app.domain.errors import InvalidInput, NotFound
from app.models import utcnow
from app.services import app_config, db_session
from app.survey_links import survey_url

bp = APIBlueprint("engagement", __name__, url_prefix="/api/v1", tag="Referrals and surveys")


@bp.get("/members/<int:member_id>/referrals")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(MemberReferralsOut)
@bp.doc(responses=problems(401, 403, 404))
def member_referrals(member_id):
    """The member's referral code and link, the referrals they made with their state and rewards, and who
    referred them."""
    session = db_session()
    member = members.get_member(session, current_caller().merchant_id, member_id)
    return {**referrals.member_referrals(session, member),
            "referral_url": referrals.referral_link(app_config().public_base_url, member)}


@bp.get("/programs/<int:program_id>/referrals/stats")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(ProgramReferralStatsOut)
@bp.doc(responses=problems(401, 403, 404))
def program_referral_stats(program_id):
    """Counts by state and rejection reason, points paid, completion rate and the top referrers."""
    session = db_session()
    return referrals.program_stats(session, programs.get_program(session, current_caller().merchant_id, program_id))


@bp.post("/programs/<int:program_id>/surveys")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(SurveyIn, arg_name="data")
@bp.output(SurveyOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def create_survey(program_id, data):
    """A survey: rating (1-5), choice and free-text questions; offered after `after_purchases` purchases or sent
    to a member; `bonus_points` paid once per member with the answer."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    return surveys.create_survey(session, program, data)


@bp.get("/programs/<int:program_id>/surveys")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(SurveyList)
@bp.doc(responses=problems(401, 403, 404))
def list_surveys(program_id):
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    return {"data": surveys.surveys_of(session, program.id)}


@bp.get("/surveys/<int:survey_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(SurveyOut)
@bp.doc(responses=problems(401, 403, 404))
def get_survey(survey_id):
    return surveys.get_survey(db_session(), current_caller().merchant_id, survey_id)


@bp.patch("/surveys/<int:survey_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(SurveyPatch, arg_name="data")
@bp.output(SurveyOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def update_survey(survey_id, data):
    """Switch it off (`active: false`) or on, or change its bonus, offer threshold or open days."""
    session = db_session()
    return surveys.update_survey(session, surveys.get_survey(session, current_caller().merchant_id, survey_id), data)


@bp.post("/surveys/<int:survey_id>/send")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(SendSurveyIn, arg_name="data")
@bp.output(InvitationOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 409, 413, 422))
def send_survey(survey_id, data):
    """Offer the survey to a member now: its link appears on their card (sending again while open keeps it open
    longer); 409 when they already answered or the survey is switched off."""
    session = db_session()
    merchant_id = current_caller().merchant_id
    survey = surveys.get_survey(session, merchant_id, survey_id)
    try:
        member = ledger.get_member_for_update(session, merchant_id, data["member_id"])  # its card changes
    except NotFound:  # a reference in the body is bad input; only the path's survey answers 404
        raise InvalidInput("member_id", "No member of this survey's program has that id.") from None
    invitation = surveys.send_survey(session, survey, member, utcnow())
    return {"id": invitation.id, "survey_id": survey.id, "member_id": member.id,
            "url": survey_url(member.program, invitation), "expires_at": invitation.expires_at,
            "answered_at": invitation.answered_at}


@bp.get("/surveys/<int:survey_id>/responses")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(SurveyResultsOut)
@bp.doc(responses=problems(401, 403, 404, 422))
def survey_responses(survey_id, page):
    """Aggregates per question (counts, average rating, latest free text) and the responses, newest first; pass
    `next_before` back as `before` for the next page."""
    session = db_session()
    survey = surveys.get_survey(session, current_caller().merchant_id, survey_id)
    found = surveys.responses_of(session, survey, page.get("before"), page["limit"] + 1)
    more = len(found) > page["limit"]
    found = found[:page["limit"]]
    return {**surveys.survey_results(session, survey), "data": found,
            "next_before": found[-1].id if more else None}
