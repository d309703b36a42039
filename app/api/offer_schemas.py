"""Request and response shapes of offer templates and a member's offer (app/api/offers.py)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from app.api.schemas import JsonBoolean, WholeNumber
from app.domain.ledger import MAX_POINTS
from app.domain.offers import KINDS
from passes.strings import LOCALES

_TEXTS = "Locale -> text. Placeholders by kind: top_category {category}; we_miss_you {days}; next_tier {points}, {tier}"


def _texts(**kwargs) -> Dict:
    return Dict(keys=String(validate=OneOf(LOCALES)), values=String(validate=Length(1, 200)), validate=Length(min=1),
                metadata={"description": _TEXTS, "example": {"en": "10% off your next {category}",
                                                             "ja": "次回の{category}が10%オフ"}}, **kwargs)


class OfferPatch(Schema):
    name = String(validate=Length(1, 120))
    priority = WholeNumber(validate=Range(min=0, max=1000), metadata={
        "description": "Lower goes first; defaults: we_miss_you 10, next_tier 20, top_category 30, default 100. "
                       "Equal priorities: the older template first"})
    texts = _texts()
    labels = Dict(keys=String(validate=OneOf(LOCALES)), values=String(validate=Length(1, 40)), metadata={
        "description": "Locale -> the card line's label (default: Your offer / あなたへの特典 / 회원님을 위한 혜택)"})
    active = JsonBoolean()
    window_days = WholeNumber(validate=Range(min=1, max=730), metadata={
        "description": "top_category: purchases of the last N days count (default 90)"})
    min_purchases = WholeNumber(validate=Range(min=1, max=10_000), metadata={
        "description": "top_category: items of the top category the member must have bought (default 1)"})
    categories = List(String(validate=Length(1, 60)), validate=Length(max=50), metadata={
        "description": "top_category: only these categories qualify (default: any)"})
    days = WholeNumber(validate=Range(min=1, max=3650), metadata={
        "description": "we_miss_you: no purchase for at least N days (default 30)"})
    within_points = WholeNumber(validate=Range(min=1, max=MAX_POINTS), metadata={
        "description": "next_tier: at most N points short of the next tier (default 100)"})


class OfferIn(OfferPatch):
    name = String(required=True, validate=Length(1, 120))
    kind = String(required=True, validate=OneOf(KINDS))
    texts = _texts(required=True)


class OfferOut(Schema):
    id = Integer()
    program_id = Integer()
    name = String()
    kind = String()
    priority = Integer()
    active = JsonBoolean()
    rule = String(metadata={"description": "The rule in plain words"})
    texts = Dict(keys=String(), values=String())
    labels = Dict(keys=String(), values=String())
    window_days = Integer()
    min_purchases = Integer()
    categories = List(String())
    days = Integer()
    within_points = Integer()
    members = Integer(metadata={"description": "Members whose card shows it now"})
    created_at = DateTime()


class OfferList(Schema):
    data = List(Nested(OfferOut))
    precedence = String()


class OfferVerdict(Schema):
    offer_id = Integer()
    name = String()
    kind = String()
    priority = Integer()
    fits = JsonBoolean()
    why = String()


class ChosenOffer(Schema):
    offer_id = Integer()
    name = String()
    kind = String()
    label = String(metadata={"description": "In the member's language"})
    text = String()
    why = String(metadata={"description": 'e.g. "most-bought category: coffee, 7 of 12 items in 90 days"'})


class OnCard(Schema):
    offer_id = Integer()
    label = String()
    text = String()
    chosen_at = DateTime()


class MemberOffers(Schema):
    chosen = Nested(ChosenOffer, allow_none=True, metadata={"description": "The offer that fits now; null: none"})
    on_card = Nested(OnCard, allow_none=True, metadata={
        "description": "What the card shows (chosen at the last purchase, daily, or after a template changed)"})
    evaluated = List(Nested(OfferVerdict), metadata={"description": "Every template, in precedence order"})
    precedence = String()
