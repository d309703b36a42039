"""/join/<slug>/survey/<token>: the survey a member was offered, opened from the link on their card. The token is
the signed invitation (app/survey_links.py): no sign-in, the link is the member's. The form is protected by the
visitor's session cookie and its CSRF token, like the join form."""

from __future__ import annotations

from flask import make_response, render_template, request

import app.member_sessions as member_sessions
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.surveys import in_locale, open_invitation, submit_response
from app.models import Program, SurveyInvitation, utcnow
from app.pages import bp
from app.pages.join import page_context, program_or_404, respond
from app.services import db_session
from app.survey_links import invitation_id_from


@bp.get("/join/<slug>/survey/<token>")
def survey(slug: str, token: str):
    program = program_or_404(slug)
    session = member_sessions.read(request) or member_sessions.new_session()
    invitation, refusal = _invitation(program, token)
    if refusal:
        return _message(session, program, *refusal)
    return _form(session, program, invitation, {}, {}, 200)


@bp.post("/join/<slug>/survey/<token>")
def survey_submit(slug: str, token: str):
    """Store the answers (and pay the bonus) once; a second answer gets the "already answered" page."""
    program = program_or_404(slug)
    session = member_sessions.read(request)
    invitation, refusal = _invitation(program, token)
    if refusal:  # an answer to an answered survey is refused (409), though reopening the link is fine (200)
        message, status = refusal
        return _message(session or member_sessions.new_session(), program, message,
                        409 if message == "survey.already_answered" else status)
    answers = {question["id"]: request.form.get(question["id"], "") for question in invitation.survey.questions}
    if not member_sessions.csrf_matches(session, request.form.get(member_sessions.CSRF_FIELD)):
        return _form(member_sessions.new_session(), program, invitation, answers, {"form": "signin.expired_form"},
                     400)
    try:
        response = submit_response(db_session(), invitation, answers, utcnow())
    except InvalidInput as error:
        db_session().rollback()
        return _form(session, program, invitation, answers, {error.field: "survey.error.field"}, 422)
    except Conflict:
        db_session().rollback()
        return _message(session, program, "survey.already_answered", 409)
    points = invitation.survey.bonus_points if response.bonus_entry_id else 0
    db_session().commit()
    if points:
        return _message(session, program, "survey.thanks_bonus", 200, points=points)
    return _message(session, program, "survey.thanks", 200, program=program.name)


def _invitation(program: Program, token: str) -> tuple[SurveyInvitation | None, tuple | None]:
    """The open invitation, or the message and status to answer instead."""
    invitation_id = invitation_id_from(token) if len(token) <= 200 else None
    if invitation_id is None:
        return None, ("survey.not_found", 404)
    try:
        return open_invitation(db_session(), invitation_id, program, utcnow()), None
    except NotFound:
        return None, ("survey.not_found", 404)
    except Conflict as refusal:
        return None, (("survey.already_answered", 200) if str(refusal) == "already_answered" else
                      ("survey.closed", 410))


def _form(session: dict, program: Program, invitation: SurveyInvitation, answers: dict, errors: dict, status: int):
    context = page_context(session)
    survey = invitation.survey
    questions = [{**question, "label": in_locale(question["text"], question.get("translations"), context["locale"])}
                 for question in survey.questions]
    body = render_template("survey.html", **context, program=program, title=in_locale(
        survey.title, survey.title_translations, context["locale"]), survey=survey, questions=questions,
        answers=answers, errors=errors, action=request.path)
    return respond(session, make_response(body, status))


def _message(session: dict, program: Program, message: str, status: int, **values):
    body = render_template("public_message.html", **page_context(session), heading=program.name, message=message,
                           values=values)
    return respond(session, make_response(body, status))
