"""Request and response shapes. The same schemas validate requests and generate /openapi.json."""

from __future__ import annotations

import re

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Decimal, Email, File, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import ValidationError, validates_schema

from app.domain.ledger import MAX_POINTS, ROUNDING
from app.untrusted import MAX_ID
from passes.storecard import BARCODE_FORMATS
from passes.strings import LOCALES


def _decimal_between(low, high):
    """A plain function, not Range: apispec would print a Decimal field's bounds as strings, which is not
    valid OpenAPI."""
    def check(value):
        if not low <= value <= high:
            raise ValidationError(f"Must be between {low} and {high}.")
    return check


def _points(**kwargs):
    return Integer(strict=True, validate=Range(min=1, max=MAX_POINTS), **kwargs)


def _id(**kwargs):
    """An id the database can compare: a larger one would fail there instead of naming the field here."""
    return Integer(validate=Range(min=1, max=MAX_ID), **kwargs)


class Colour(String):
    """`#RRGGBB`, or Apple's own `rgb(r, g, b)` (what pass designers show); stored as `#RRGGBB`."""

    _HEX = re.compile(r"#[0-9A-Fa-f]{6}")
    _RGB = re.compile(r"rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)")
    _ERROR = "Must be a colour like #1F2937 or rgb(31, 41, 55)."

    def __init__(self, **kwargs):
        super().__init__(metadata={"example": "#1F2937"}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if self._HEX.fullmatch(text):
            return text
        rgb = self._RGB.fullmatch(text)
        if rgb and all(int(part) <= 255 for part in rgb.groups()):
            return "#" + "".join(f"{int(part):02X}" for part in rgb.groups())
        raise ValidationError(self._ERROR)


class BrandingIn(Schema):
    background_color = Colour()
    foreground_color = Colour()
    label_color = Colour()
    logo_text = String(validate=Length(max=60), allow_none=True)


class TierIn(Schema):
    id = _id(strict=True, metadata={"description": "An existing tier to change in place; omit for a new tier"})
    name = String(required=True, validate=Length(1, 60))
    threshold = Integer(strict=True, required=True, validate=Range(min=0, max=MAX_POINTS))


class ProgramIn(Schema):
    name = String(required=True, validate=Length(1, 200))
    # Regexp anchors only the start; `\Z`, unlike `$`, does not match before a trailing newline
    currency = String(validate=Regexp(r"[A-Z]{3}\Z", error="Must be an ISO 4217 code such as USD or JPY."))
    points_per_unit = Decimal(validate=_decimal_between(0, 10_000), places=4)
    rounding = String(validate=OneOf(tuple(ROUNDING)))
    branding = Nested(BrandingIn)
    tiers = List(Nested(TierIn), validate=Length(max=20))
    locales = List(String(validate=OneOf(LOCALES)), validate=Length(min=1, max=len(LOCALES)))
    barcode_format = String(validate=OneOf(tuple(BARCODE_FORMATS)))
    terms = String(validate=Length(max=4000), allow_none=True)
    program_info = String(validate=Length(max=4000), allow_none=True)


class ProgramPatch(ProgramIn):
    name = String(validate=Length(1, 200))


class TierOut(Schema):
    id = Integer()
    name = String()
    threshold = Integer()


class RewardIn(Schema):
    name = String(required=True, validate=Length(1, 120))
    points_cost = _points(required=True)


class RewardOut(Schema):
    id = Integer()
    program_id = Integer()
    name = String()
    points_cost = Integer()
    active = Boolean()


class RewardSummary(RewardOut):
    """A reward inside another object. (A separate class: APIFlask registers a schema used both nested and as a
    top-level response twice, which breaks /openapi.json.)"""


class BrandingOut(Schema):
    background_color = String()
    foreground_color = String()
    label_color = String()
    logo_text = String(allow_none=True)


class ProgramOut(Schema):
    id = Integer()
    name = String()
    currency = String()
    points_per_unit = Decimal(as_string=True)
    rounding = String()
    branding = Nested(BrandingOut)
    tiers = List(Nested(TierOut))
    rewards = List(Nested(RewardSummary))
    locales = List(String())
    barcode_format = String()
    terms = String(allow_none=True)
    program_info = String(allow_none=True)
    images = List(String())
    created_at = DateTime()


class ImageUpload(Schema):
    file = File(required=True, metadata={"description": "PNG or JPEG, at most 10 MB"})


class MemberIn(Schema):
    name = String(required=True, validate=Length(1, 200))
    email = Email(validate=Length(max=254), allow_none=True)
    external_id = String(validate=Length(1, 120), allow_none=True)
    locale = String(validate=OneOf(LOCALES))
    referral_code = String(validate=Length(1, 16), allow_none=True)


class GoalOut(Schema):
    name = String()
    points_needed = Integer()


class MemberOut(Schema):
    id = Integer()
    program_id = Integer()
    name = String()
    email = String(allow_none=True)
    external_id = String(allow_none=True)
    locale = String()
    points_balance = Integer()
    held_points = Integer()
    available_points = Integer()
    lifetime_points = Integer()
    tier = String(allow_none=True)
    next_tier = Nested(GoalOut, allow_none=True)
    next_reward = Nested(GoalOut, allow_none=True)
    serial_number = String()
    barcode_value = String()
    referral_code = String()
    apple_pass_url = String()
    google_save_url = String(allow_none=True)
    created_at = DateTime()


class LookupOut(MemberOut):
    redeemable_rewards = List(Nested(RewardSummary))


class EarnIn(Schema):
    amount = Decimal(validate=_decimal_between(0, 1_000_000_000), places=2, metadata={
        "description": "Money spent, converted by the program's points_per_unit (rounded down by default)"})
    points = _points()
    reference = String(validate=Length(1, 200), allow_none=True, metadata={"description": "e.g. the order id"})
    reason = String(validate=Length(1, 200), allow_none=True)

    @validates_schema
    def _one_of_amount_or_points(self, data, **_):
        if ("amount" in data) == ("points" in data):
            raise ValidationError("Give exactly one of amount or points.", "points" if "points" in data
                                  else "amount")


class RedeemIn(Schema):
    points = _points()
    reward_id = _id(strict=True)
    reference = String(validate=Length(1, 200), allow_none=True)
    reason = String(validate=Length(1, 200), allow_none=True)

    @validates_schema
    def _one_of_points_or_reward(self, data, **_):
        if ("points" in data) == ("reward_id" in data):
            raise ValidationError("Give exactly one of points or reward_id.", "reward_id" if "reward_id" in data
                                  else "points")


class AdjustIn(Schema):
    points = Integer(strict=True, required=True, validate=Range(min=-MAX_POINTS, max=MAX_POINTS), metadata={
        "description": "Positive to credit, negative to debit; a debit never takes the balance below zero"})
    reason = String(required=True, validate=Length(1, 200), metadata={"description": "Shown in the statement"})
    reference = String(validate=Length(1, 200), allow_none=True)


class ReverseIn(Schema):
    points = _points(metadata={"description": "Reverse only part of the transaction"})
    reference = String(validate=Length(1, 200), allow_none=True)


class LookupIn(Schema):
    barcode = String(required=True, validate=Length(1, 200))


class TransactionOut(Schema):
    id = Integer()
    member_id = Integer()
    kind = String()
    points = Integer()
    balance_after = Integer()
    amount = Decimal(as_string=True, allow_none=True)
    reference = String(allow_none=True)
    reason = String(allow_none=True)
    reward_id = Integer(allow_none=True)
    reverses_id = Integer(allow_none=True)
    shortfall = Integer()
    created_at = DateTime()


class TransactionResult(Schema):
    transaction = Nested(TransactionOut)
    member = Nested(MemberOut)
    shortfall = Integer(metadata={"description": "Reversed points the member had already spent"})


class PageQuery(Schema):
    limit = Integer(load_default=50, validate=Range(min=1, max=200))
    before = Integer(validate=Range(min=0, max=MAX_ID),
                     metadata={"description": "Cursor: the `next_before` of the previous page"})


class TransactionPage(Schema):
    data = List(Nested(TransactionOut))
    next_before = Integer(allow_none=True)
