"""Request and response shapes of referrals and surveys (issue 14), kept apart from schemas.py so each feature's
shapes sit together."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import DateTime, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from app.api.schemas import JsonBoolean, WholeNumber
from app.domain.ledger import MAX_POINTS
from app.domain.surveys import QUESTION_KINDS
from app.untrusted import MAX_ID
from passes.strings import LOCALES

Translations = Dict(keys=String(validate=OneOf(LOCALES)), values=String(validate=Length(1, 500)), metadata={
    "description": "The same text per language (en, ja, ko); the member's language is shown when given"})


class ReferralRewardOut(Schema):
    qualifying_transaction_id = Integer(allow_none=True, metadata={"description": "The purchase; null at sign-up"})
    referrer_points = Integer()
    referee_points = Integer()
    referrer_transaction_id = Integer(allow_none=True)
    referee_transaction_id = Integer(allow_none=True)
    created_at = String()
    reversed_at = String(allow_none=True, metadata={"description": "When refunding the purchase reversed it"})


class ReferralOut(Schema):
    id = Integer()
    program_id = Integer()
    referrer_id = Integer()
    referee_id = Integer()
    state = String(metadata={"enum": ["pending", "completed", "rejected"]})
    reason = String(allow_none=True, metadata={"description": "Why rejected: self_referral, already_member, "
                                                              "same_device, referrer_velocity, ip_velocity, "
                                                              "referrer_cap, window_passed, refunded, "
                                                              "referrer_deleted"})
    ordinal = Integer(allow_none=True, metadata={"description": "The referrer's how-many-th completed referral"})
    created_at = String()
    completed_at = String(allow_none=True)
    rewards = List(Nested(ReferralRewardOut))


class ReferredByOut(Schema):
    id = Integer()
    referrer_id = Integer()
    state = String()
    reason = String(allow_none=True)
    created_at = String()
    completed_at = String(allow_none=True)


class MemberReferralStats(Schema):
    pending = Integer()
    completed = Integer()
    rejected = Integer()
    points_earned = Integer(metadata={"description": "As referrer, net of reversed rewards"})


class MemberReferralsOut(Schema):
    member_id = Integer()
    referral_code = String()
    referral_url = String(metadata={"description": "The join page with the code filled in"})
    stats = Nested(MemberReferralStats)
    data = List(Nested(ReferralOut), metadata={"description": "Referrals this member made, newest first (100)"})
    referred_by = Nested(ReferredByOut, allow_none=True)


class TopReferrerOut(Schema):
    member_id = Integer()
    name = String()
    completed = Integer()


class ProgramReferralStatsOut(Schema):
    program_id = Integer()
    enabled = JsonBoolean()
    total = Integer()
    pending = Integer()
    completed = Integer()
    rejected = Integer()
    rejected_by_reason = Dict(keys=String(), values=Integer())
    completion_rate = Float(allow_none=True)
    referrer_points = Integer(metadata={"description": "Paid to referrers, net of reversals"})
    referee_points = Integer()
    top_referrers = List(Nested(TopReferrerOut))


class QuestionIn(Schema):
    kind = String(required=True, validate=OneOf(QUESTION_KINDS))
    text = String(required=True, validate=Length(1, 500))
    translations = Translations
    choices = List(String(validate=Length(1, 120)), validate=Length(max=10), metadata={
        "description": "For a choice question: 2 to 10"})
    required = JsonBoolean(metadata={"description": "default true"})


class SurveyIn(Schema):
    title = String(required=True, validate=Length(1, 120))
    title_translations = Translations
    questions = List(Nested(QuestionIn), required=True, validate=Length(1, 20))
    bonus_points = WholeNumber(validate=Range(min=0, max=MAX_POINTS), metadata={
        "description": "Paid once per member with their answer (a `bonus` transaction); default 0"})
    after_purchases = WholeNumber(validate=Range(min=1, max=10_000), allow_none=True, metadata={
        "description": "Offered on the card after this many purchases; null: only when sent"})
    open_days = WholeNumber(validate=Range(min=1, max=365), metadata={
        "description": "How long an invitation stays open (default 30)"})


class SurveyPatch(Schema):
    active = JsonBoolean(metadata={"description": "false takes it off every card and stops answers"})
    bonus_points = WholeNumber(validate=Range(min=0, max=MAX_POINTS))
    after_purchases = WholeNumber(validate=Range(min=1, max=10_000), allow_none=True)
    open_days = WholeNumber(validate=Range(min=1, max=365))


class QuestionOut(Schema):
    id = String()
    kind = String()
    text = String()
    translations = Dict()
    choices = List(String())
    required = JsonBoolean()


class SurveyOut(Schema):
    id = Integer()
    program_id = Integer()
    title = String()
    title_translations = Dict()
    questions = List(Nested(QuestionOut))
    bonus_points = Integer()
    after_purchases = Integer(allow_none=True)
    open_days = Integer()
    active = JsonBoolean()
    created_at = DateTime()


class SurveyList(Schema):
    data = List(Nested(SurveyOut))


class SendSurveyIn(Schema):
    member_id = WholeNumber(required=True, validate=Range(min=1, max=MAX_ID))


class InvitationOut(Schema):
    id = Integer()
    survey_id = Integer()
    member_id = Integer()
    url = String(metadata={"description": "The member's survey page (also on their card)"})
    expires_at = DateTime()
    answered_at = DateTime(allow_none=True)


class QuestionResults(Schema):
    id = String()
    kind = String()
    text = String()
    answers = Integer()
    counts = Dict(keys=String(), values=Integer(), metadata={"description": "Per rating 1-5 or per choice"})
    average = Float(allow_none=True, metadata={"description": "Ratings only"})
    recent = List(String(), metadata={"description": "Free text only: the latest 20"})


class ResponseOut(Schema):
    id = Integer()
    member_id = Integer()
    answers = Dict(metadata={"description": "Question id -> rating, choice or text"})
    bonus_transaction_id = Integer(allow_none=True, attribute="bonus_entry_id")
    created_at = DateTime()


class SurveyResultsOut(Schema):
    survey_id = Integer()
    invited = Integer()
    responses = Integer()
    response_rate = Float(allow_none=True)
    questions = List(Nested(QuestionResults))
    data = List(Nested(ResponseOut), metadata={"description": "Responses, newest first"})
    next_before = Integer(allow_none=True)
