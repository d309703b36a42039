"""Request and response shapes of segments, campaigns, surprises and member tags (kept apart from schemas.py,
which is long enough). A segment's `rules` are checked by the domain (app/domain/segments.py), which names the
bad part ("rules.conditions[1].value")."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, validates_schema

from app.api.schemas import Instant, WholeNumber, _id, _points
from app.domain.campaigns import MAX_CAP_DAYS, STATUSES
from app.domain.surprises import MAX_SAMPLE
from app.domain.tags import MAX_TAGS
from passes.strings import LOCALES

_RULES_DOC = {"description": 'A rule: {"match": "all" | "any", "conditions": [{"field", "op", "value"?, '
                             '"window"?}]}; the fields, operators and windows are listed in docs/architecture.md '
                             '("Segments")',
              "example": {"match": "all", "conditions": [
                  {"field": "purchase_count", "op": "gte", "value": 3, "window": {"days": 30}},
                  {"field": "apple_wallet", "op": "is", "value": "removed"}]}}


class Localized(Dict):
    """A text, or one per locale: "Hello" or {"en": "Hello", "ja": "こんにちは"}."""

    def __init__(self, max_length: int, **kwargs):
        self.max_length = max_length
        super().__init__(keys=String(validate=OneOf(LOCALES)), values=String(validate=Length(1, max_length)),
                         metadata={"description": "A text, or {locale: text} for en, ja, ko",
                                   "oneOf": [{"type": "string"}, {"type": "object"}], **kwargs.pop("metadata", {})},
                         **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if not 1 <= len(value) <= self.max_length:
                raise ValidationError(f"Must be 1 to {self.max_length} characters.")
            return value
        result = super()._deserialize(value, attr, data, **kwargs)
        if not result:
            raise ValidationError("Give at least one language.")
        return result


class SegmentIn(Schema):
    name = String(required=True, validate=Length(1, 120))
    rules = Dict(required=True, metadata=_RULES_DOC)


class SegmentPatch(Schema):
    name = String(validate=Length(1, 120))
    rules = Dict(metadata=_RULES_DOC)


class SegmentOut(Schema):
    id = Integer()
    program_id = Integer()
    name = String()
    rules = Dict()
    count = Integer(metadata={"description": "Present with ?count=true: members matching now"})
    created_at = DateTime()
    updated_at = DateTime()


class SegmentList(Schema):
    data = List(Nested(SegmentOut))


class CountQuery(Schema):
    count = Boolean(load_default=False)


class SegmentCount(Schema):
    segment_id = Integer()
    count = Integer()
    as_of = DateTime()


class MessageIn(Schema):
    title = Localized(120, required=True)
    body = Localized(500, required=True)


class CampaignOfferIn(Schema):
    text = Localized(200, required=True)
    ends_at = Instant(required=True, metadata={"description": "The offer leaves every card at this instant"})


class FrequencyCapIn(Schema):
    max = WholeNumber(required=True, validate=Range(1, 100), metadata={"description": "campaigns per member"})
    days = WholeNumber(required=True, validate=Range(1, MAX_CAP_DAYS), metadata={"description": "in this many days"})


class CampaignIn(Schema):
    name = String(required=True, validate=Length(1, 120))
    segment_id = _id(required=True)
    message = Nested(MessageIn)
    offer = Nested(CampaignOfferIn)
    send_at = Instant(metadata={"description": "When to send; absent or past: now"})
    frequency_cap = Nested(FrequencyCapIn, metadata={
        "description": "Skip members who already received `max` campaigns in the last `days` days"})

    @validates_schema
    def _message_or_offer(self, data, **_):
        if "message" not in data and "offer" not in data:
            raise ValidationError("Give a message, an offer, or both.", "message")


class ScheduleIn(Schema):
    send_at = Instant(required=True)


class ResultsOut(Schema):
    targeted = Integer(metadata={"description": "The segment's members when sending began"})
    delivered = Integer()
    capped = Integer(metadata={"description": "Skipped: the frequency cap was reached"})
    card_updated = Integer(metadata={"description": "Delivered to a card in Apple or Google Wallet"})
    redeemed = Integer(metadata={"description": "Offers used (POST /api/v1/campaigns/{id}/redemptions)"})


class CampaignResults(ResultsOut):
    """The results alone (GET /campaigns/{id}/results)."""


class CampaignOut(Schema):
    id = Integer()
    program_id = Integer()
    segment_id = Integer()
    name = String()
    status = String(metadata={"enum": list(STATUSES)})
    message = Dict(allow_none=True)
    offer = Dict(allow_none=True)
    frequency_cap = Dict(allow_none=True)
    send_at = DateTime()
    started_at = DateTime(allow_none=True)
    finished_at = DateTime(allow_none=True)
    cancelled_at = DateTime(allow_none=True)
    results = Nested(ResultsOut)
    created_at = DateTime()


class CampaignList(Schema):
    data = List(Nested(CampaignOut))


class RedemptionIn(Schema):
    member_id = _id(required=True)


class RedemptionOut(Schema):
    campaign_id = Integer()
    member_id = Integer()
    redeemed_at = DateTime()


class SurpriseIn(Schema):
    segment_id = _id(required=True)
    sample_size = WholeNumber(required=True, validate=Range(1, MAX_SAMPLE))
    points = _points()
    reward_id = _id(metadata={"description": "Give the reward's points cost instead of `points`"})
    seed = String(validate=Length(1, 64), metadata={"description": "Absent: a random one (returned)"})

    @validates_schema
    def _points_or_reward(self, data, **_):
        if ("points" in data) == ("reward_id" in data):
            raise ValidationError("Give exactly one of points or reward_id.", "points")


class SurpriseOut(Schema):
    id = Integer()
    program_id = Integer()
    segment_id = Integer()
    seed = String()
    sample_size = Integer()
    points = Integer()
    reward_id = Integer(allow_none=True)
    eligible_count = Integer()
    eligible_digest = String(metadata={"description": "SHA-256 of the eligible member ids, sorted, comma-joined"})
    member_ids = List(Integer(), metadata={"description": "The winners, ascending"})
    created_at = DateTime()


class TagsIn(Schema):
    tags = List(String(validate=Length(1, 40)), required=True, validate=Length(max=MAX_TAGS))


class TagsOut(Schema):
    member_id = Integer()
    tags = List(String())
