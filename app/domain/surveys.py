"""Feedback: a program's survey (rating 1-5, a choice, free text), offered to a member after their Nth purchase
or sent on demand. An invitation puts a link on the member's card (a card notice) until they answer or it closes
(`open_days`); the answer is stored once per survey and member, and the survey's bonus, if any, is a `bonus`
ledger entry paid with it, so once. Results are counts and averages per question."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.ledger import earn_points, lock_member
from app.domain.many_cards import cards_changed
from app.domain.passupdates import card_changed
from app.models import LedgerEntry, Member, Program, Survey, SurveyInvitation, SurveyResponse, utcnow
from passes.storecard import CardNotice

QUESTION_KINDS = ("rating", "choice", "text")
RATINGS = range(1, 6)
MAX_TEXT_ANSWER = 2000
RECENT_TEXTS = 20  # free-text answers the results show per question
NOTICE_TEXT = {"en": "Tell us how we did", "ja": "ご意見をお聞かせください", "ko": "의견을 들려주세요"}
NOTICE_BONUS = {"en": " (+{points} points)", "ja": "（{points}ポイント進呈）", "ko": " ({points}포인트 적립)"}


def create_survey(session: Session, program: Program, data: dict) -> Survey:
    """Questions get ids q1, q2... in order: the answers and the results name them."""
    questions = [{"id": f"q{n}", "kind": q["kind"], "text": q["text"], "required": q.get("required", True),
                  "choices": list(q.get("choices") or []), "translations": dict(q.get("translations") or {})}
                 for n, q in enumerate(data["questions"], 1)]
    for n, question in enumerate(questions):
        if question["kind"] == "choice" and len(question["choices"]) < 2:
            raise InvalidInput(f"questions.{n}.choices", "A choice question needs at least two choices.")
    survey = Survey(merchant_id=program.merchant_id, program_id=program.id, title=data["title"],
                    title_translations=dict(data.get("title_translations") or {}), questions=questions,
                    bonus_points=data.get("bonus_points", 0), after_purchases=data.get("after_purchases"),
                    open_days=data.get("open_days", 30), active=True)
    session.add(survey)
    session.flush()
    _note_purchase_surveys(session, program)
    return survey


def update_survey(session: Session, survey: Survey, data: dict) -> Survey:
    """Switch it off or on, change its bonus, offer threshold or how long invitations stay open (the questions
    stay: answers already given refer to them)."""
    was_active = survey.active
    for name in ("active", "bonus_points", "after_purchases", "open_days"):
        if name in data:
            setattr(survey, name, data[name])
    session.flush()
    if survey.active != was_active or survey.active and "bonus_points" in data:
        _refresh_invited_cards(session, survey)
    _note_purchase_surveys(session, session.get(Program, survey.program_id))
    return survey


def _refresh_invited_cards(session: Session, survey: Survey) -> None:
    """The cards showing (or that will show again) this survey's link: their notice changed (many at once: one
    design change, `many_cards`)."""
    invited = list(session.scalars(select(SurveyInvitation.member_id).where(
        SurveyInvitation.survey_id == survey.id, SurveyInvitation.answered_at.is_(None),
        SurveyInvitation.expires_at > utcnow()).order_by(SurveyInvitation.member_id)))
    cards_changed(session, session.get(Program, survey.program_id), invited)


def _note_purchase_surveys(session: Session, program: Program) -> None:
    """Keep the program's flag that spares every earn a look for surveys when none is offered after purchases."""
    program.purchase_surveys = session.scalar(select(Survey.id).where(
        Survey.program_id == program.id, Survey.active, Survey.after_purchases.is_not(None)).limit(1)) is not None
    session.flush()


def get_survey(session: Session, merchant_id: int, survey_id: int) -> Survey:
    survey = session.get(Survey, survey_id)
    if survey is None or survey.merchant_id != merchant_id:
        raise NotFound(f"No survey {survey_id}.")
    return survey


def surveys_of(session: Session, program_id: int) -> list[Survey]:
    return list(session.scalars(select(Survey).where(Survey.program_id == program_id).order_by(Survey.id)))


def send_survey(session: Session, survey: Survey, member: Member, now: datetime) -> SurveyInvitation:
    """Offer the survey to the member (its link on their card); sending it again while open keeps it open
    longer. Refused when they already answered, for another program's member, or a switched-off survey."""
    if member.program_id != survey.program_id or member.deleted_at is not None:
        raise InvalidInput("member_id", "No member of this survey's program has that id.")
    if not survey.active:
        raise Conflict(f"Survey {survey.id} is switched off.")
    invitation = session.scalar(select(SurveyInvitation).where(SurveyInvitation.survey_id == survey.id,
                                                               SurveyInvitation.member_id == member.id))
    if invitation is not None and invitation.answered_at is not None:
        raise Conflict(f"Member {member.id} already answered survey {survey.id}.")
    return _invite(session, survey, member, invitation, now)


def _invite(session: Session, survey: Survey, member: Member, invitation: SurveyInvitation | None,
            now: datetime) -> SurveyInvitation:
    if invitation is None:
        invitation = SurveyInvitation(survey_id=survey.id, survey=survey, member_id=member.id, created_at=now,
                                      expires_at=now)
        session.add(invitation)
    invitation.expires_at = now + timedelta(days=survey.open_days)
    session.flush()
    card_changed(session, member)
    return invitation


def after_purchase(session: Session, member: Member, purchase: LedgerEntry, now: datetime) -> list[SurveyInvitation]:
    """Offer each running survey whose purchase threshold the member just reached, once (never again after an
    invitation, answered or not)."""
    if purchase.kind != "earn" or not member.program.purchase_surveys:
        return []
    due = list(session.scalars(select(Survey).where(Survey.program_id == member.program_id, Survey.active,
                                                    Survey.after_purchases.is_not(None))))
    if not due:
        return []
    purchases = session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.member_id == member.id, LedgerEntry.kind == "earn"))
    offered = set(session.scalars(select(SurveyInvitation.survey_id).where(SurveyInvitation.member_id == member.id)))
    return [_invite(session, survey, member, None, now) for survey in due
            if purchases >= survey.after_purchases and survey.id not in offered]


def open_invitation(session: Session, invitation_id: int, program: Program, now: datetime) -> SurveyInvitation:
    """The invitation a survey link names, if it belongs to this program's page; refused when answered or closed."""
    invitation = session.get(SurveyInvitation, invitation_id)
    if invitation is None or invitation.survey.program_id != program.id or \
            session.get(Member, invitation.member_id).deleted_at is not None:
        raise NotFound("No such survey.")
    if invitation.answered_at is not None:
        raise Conflict("already_answered")
    if invitation.expires_at <= now or not invitation.survey.active:
        raise Conflict("closed")
    return invitation


def submit_response(session: Session, invitation: SurveyInvitation, answers: dict, now: datetime) -> SurveyResponse:
    """Store the member's answers and pay the survey's bonus, once: a second answer is refused (the unique
    response per survey and member settles two at the same moment). The card's link goes away."""
    member = lock_member(session, session.get(Member, invitation.member_id))
    session.refresh(invitation)  # under the member's lock: a concurrent answer is seen
    if invitation.answered_at is not None:
        raise Conflict("already_answered")
    survey = invitation.survey
    response = SurveyResponse(survey_id=survey.id, member_id=member.id, answers=clean_answers(survey, answers),
                              created_at=now)
    session.add(response)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("already_answered") from None
    if survey.bonus_points:
        response.bonus_entry_id = earn_points(session, member, survey.bonus_points, kind="bonus",
                                              rule=f"survey:{survey.id}", reference=f"survey-{survey.id}",
                                              reason=f"Survey: {survey.title}"[:200]).id
    invitation.answered_at = now
    card_changed(session, member)
    session.flush()
    return response


def clean_answers(survey: Survey, answers: dict) -> dict:
    """Each question's answer as stored (a rating as an int); a missing required one or a value out of range is
    refused naming the question."""
    cleaned = {}
    for question in survey.questions:
        qid, value = question["id"], answers.get(question["id"])
        if value is None or value == "":
            if question.get("required", True):
                raise InvalidInput(qid, "Please answer this question.")
            continue
        if question["kind"] == "rating":
            rating = int(value) if isinstance(value, int) or str(value).isdigit() else None
            if rating not in RATINGS:
                raise InvalidInput(qid, "Must be a rating from 1 to 5.")
            cleaned[qid] = rating
        elif question["kind"] == "choice":
            if value not in question["choices"]:
                raise InvalidInput(qid, "Must be one of the choices.")
            cleaned[qid] = value
        else:
            text = str(value).strip()
            if len(text) > MAX_TEXT_ANSWER:
                raise InvalidInput(qid, f"At most {MAX_TEXT_ANSWER} characters.")
            if text:
                cleaned[qid] = text
    return cleaned


def survey_results(session: Session, survey: Survey) -> dict:
    """Per question: how many answered, and the counts and average of ratings, the counts per choice, or the
    latest free-text answers."""
    answers = list(session.scalars(select(SurveyResponse.answers).where(SurveyResponse.survey_id == survey.id)
                                   .order_by(SurveyResponse.id.desc())))
    invited = session.scalar(select(func.count()).select_from(SurveyInvitation)
                             .where(SurveyInvitation.survey_id == survey.id))
    return {"survey_id": survey.id, "invited": invited, "responses": len(answers),
            "response_rate": round(len(answers) / invited, 4) if invited else None,
            "questions": [_question_results(question, [a[question["id"]] for a in answers if question["id"] in a])
                          for question in survey.questions]}


def _question_results(question: dict, values: list) -> dict:
    result = {"id": question["id"], "kind": question["kind"], "text": question["text"], "answers": len(values)}
    if question["kind"] == "rating":
        counts = Counter(values)
        result["counts"] = {str(rating): counts.get(rating, 0) for rating in RATINGS}
        result["average"] = round(sum(values) / len(values), 2) if values else None
    elif question["kind"] == "choice":
        counts = Counter(values)
        result["counts"] = {choice: counts.get(choice, 0) for choice in question["choices"]}
    else:
        result["recent"] = values[:RECENT_TEXTS]
    return result


def responses_of(session: Session, survey: Survey, before: int | None, limit: int) -> list[SurveyResponse]:
    query = select(SurveyResponse).where(SurveyResponse.survey_id == survey.id)
    if before:
        query = query.where(SurveyResponse.id < before)
    return list(session.scalars(query.order_by(SurveyResponse.id.desc()).limit(limit)))


def in_locale(text: str, translations: dict | None, locale: str) -> str:
    """The merchant's wording in the member's language when they gave one, else as written."""
    return (translations or {}).get(locale) or text


def survey_notices(session: Session, member: Member, now: datetime,
                   link_for: Callable[[SurveyInvitation], str]) -> list[CardNotice]:
    """A tappable line per survey the member was offered and has not answered, while it is open."""
    invitations = session.scalars(select(SurveyInvitation).join(Survey).where(
        SurveyInvitation.member_id == member.id, SurveyInvitation.answered_at.is_(None),
        SurveyInvitation.expires_at > now, Survey.active).order_by(SurveyInvitation.id))
    locale = member.locale if member.locale in NOTICE_TEXT else "en"
    notices = []
    for invitation in invitations:
        survey = invitation.survey
        bonus = NOTICE_BONUS[locale].format(points=survey.bonus_points) if survey.bonus_points else ""
        notices.append(CardNotice(key=f"survey_{survey.id}", label=in_locale(survey.title, survey.title_translations,
                                                                             locale),
                                  text=NOTICE_TEXT[locale] + bonus, link=link_for(invitation)))
    return notices
