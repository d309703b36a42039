"""Request and response shapes. The same schemas validate requests and generate /openapi.json."""

from __future__ import annotations

import ipaddress
import re
from datetime import timezone
from decimal import Decimal as D

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Decimal, Dict, Email, Field, File, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import EXCLUDE, ValidationError, validates_schema

from app.domain.bonuses import BONUS_KINDS, CAP_PERIODS
from app.domain.calendar import is_time_zone, time_zone_names
from app.domain.earnrules import ROUNDING, WEEKDAYS
from app.domain.events import EVENT_TYPES
from app.domain.holds import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS
from app.domain.ledger import MAX_POINTS
from app.domain.lots import EXPIRY_POLICIES
from app.domain.members import PHONE_PATTERN
from app.domain.programs import SLUG_LENGTH, SLUG_PATTERN, SLUG_RULE
from app.domain.referrals import TRIGGERS as REFERRAL_TRIGGERS
from app.domain.stamps import MAX_STAMPS_PER_EARN
from app.domain.webhook_targets import MAX_URL_LENGTH
from app.pairing import DEFAULT_TTL_SECONDS as DEFAULT_PAIRING_TTL
from app.pairing import MAX_TTL_SECONDS as MAX_PAIRING_TTL
from app.untrusted import MAX_ID
from passes.google import PROJECT_ID_PATTERN
from passes.images import UPLOAD_KINDS
from passes.stamps import MAX_STAMPS
from passes.storecard import BARCODE_FORMATS
from passes.strings import LOCALES


class DecimalText(Field):
    """Money or a rate: a plain decimal string ("12.50", at most `places` decimals) or a JSON number, from 0 to
    `high` (a power of ten). The string grammar is one regex, used both to check and in /openapi.json, so the
    document and the check cannot disagree (Python's Decimal alone would also take "1e3", " 12.5" or "1_000")."""

    def __init__(self, high: int, places: int, **kwargs):
        digits = len(str(high)) - 1
        if high != 10 ** digits:
            raise ValueError("high must be a power of ten")
        self.high, self.places = D(high), places
        self.pattern = rf"^(?:[0-9]{{1,{digits}}}(?:\.[0-9]{{1,{places}}})?|{high}(?:\.0{{1,{places}}})?)$"
        document = {"anyOf": [{"type": "string", "format": "decimal", "pattern": self.pattern},
                              {"type": "number", "minimum": 0, "maximum": high}]}
        super().__init__(metadata={**document, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and re.fullmatch(self.pattern, value) or \
                isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= self.high:
            return D(str(value)).quantize(D(1).scaleb(-self.places))
        raise ValidationError(f"Must be a decimal from 0 to {self.high} with at most {self.places} decimals, "
                              'such as "12.50".')


class DecimalOut(Decimal):
    """Decimals leave as strings ("12.50"): exact, unlike a JSON number."""

    def __init__(self, **kwargs):
        metadata = {"type": "string", "format": "decimal", **kwargs.pop("metadata", {})}
        super().__init__(as_string=True, metadata=metadata, **kwargs)


class Instant(DateTime):
    """An ISO 8601 instant, UTC when it has no offset, between the years 2000 and 2999 (a date the database and
    month arithmetic can take in any zone)."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            in_range = 2000 <= moment.astimezone(timezone.utc).year <= 2999
        except OverflowError:
            in_range = False
        if not in_range:
            raise ValidationError("Must be a date between the years 2000 and 2999.")
        return moment



def _exactly_one(data: dict, fields: tuple[str, ...]) -> None:
    """The check behind EXACTLY_ONE (which /openapi.json states as a oneOf)."""
    given = [field for field in fields if field in data]
    if len(given) != 1:
        choices = ", ".join(fields[:-1]) + f" or {fields[-1]}"
        raise ValidationError(f"Give exactly one of {choices}.", given[-1] if given else fields[0])


class WholeNumber(Integer):
    """A JSON integer. JSON does not tell 40 from 40.0 (nor does JSON Schema's `integer`), so a number with no
    fraction is taken; strings and fractions are refused."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


def _points(**kwargs):
    return WholeNumber(validate=Range(min=1, max=MAX_POINTS), **kwargs)


_BYTE = r"\s*([01]?[0-9]?[0-9]|2[0-4][0-9]|25[0-5])\s*"


def _id(**kwargs):
    """An id the database can compare: a larger one would fail there instead of naming the field here."""
    return WholeNumber(validate=Range(min=1, max=MAX_ID), **kwargs)


class Colour(String):
    """`#RRGGBB`, or Apple's own `rgb(r, g, b)` (what pass designers show); stored as `#RRGGBB`. One regex checks
    and documents it."""

    PATTERN = rf"^(?:#[0-9A-Fa-f]{{6}}|rgb\({_BYTE},{_BYTE},{_BYTE}\))$"
    _ERROR = "Must be a colour like #1F2937 or rgb(31, 41, 55)."

    def __init__(self, **kwargs):
        super().__init__(metadata={"example": "#1F2937", "pattern": self.PATTERN}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        match = re.fullmatch(self.PATTERN, text)
        if match is None:
            raise ValidationError(self._ERROR)
        if not text.startswith("rgb"):
            return text
        return "#" + "".join(f"{int(part):02X}" for part in match.groups())


def _time_zone(name: str) -> None:
    if not is_time_zone(name):
        raise ValidationError("Must be an IANA time zone name such as Asia/Tokyo or UTC.")


class BrandingIn(Schema):
    background_color = Colour()
    foreground_color = Colour()
    label_color = Colour()
    logo_text = String(validate=Length(max=60), allow_none=True)


class TierIn(Schema):
    id = _id(metadata={"description": "An existing tier to change in place; omit for a new tier"})
    name = String(required=True, validate=Length(1, 60))
    threshold = WholeNumber(required=True, validate=Range(min=0, max=MAX_POINTS), metadata={
        "description": "Points earned (or money spent, with tier_rules.basis spend) within the tier window"})
    multiplier = DecimalText(high=100, places=2, metadata={"description": "Earn multiplier on money, default 1"})
    perks = String(validate=Length(max=500), allow_none=True, metadata={"description": "Shown on the card"})


class ExpiryIn(Schema):
    policy = String(required=True, validate=OneOf(EXPIRY_POLICIES))
    days = WholeNumber(validate=Range(min=0, max=3650), allow_none=True, metadata={
        "description": "rolling_days: days after each earn (required); end_of_month/end_of_year: the period "
                       "that this many days after the earn falls in"})
    warn_days = WholeNumber(validate=Range(min=0, max=365), metadata={
        "description": "points.expiring fires this many days ahead (default 14)"})

    @validates_schema
    def _rolling_needs_days(self, data, **_):
        if data.get("policy") == "rolling_days" and not data.get("days"):
            raise ValidationError("rolling_days needs days of at least 1.", "days")


class EarnRulesIn(Schema):
    minimum_spend = DecimalText(high=1_000_000, places=2, metadata={
        "description": "A purchase below this earns nothing; leave it out for none (earn_rules is replaced whole)"})
    category_multipliers = Dict(keys=String(validate=Length(1, 60)), values=DecimalText(high=100, places=2),
                                validate=Length(max=50), metadata={"example": {"coffee": "2"}})
    excluded_categories = List(String(validate=Length(1, 60)), validate=Length(max=50))


class PromotionIn(Schema):
    name = String(required=True, validate=Length(1, 60))
    multiplier = DecimalText(high=100, places=2, required=True, metadata={"example": "2"})
    starts_at = Instant(allow_none=True, metadata={"description": "ISO 8601; UTC when no offset is given"})
    ends_at = Instant(allow_none=True)
    days_of_week = List(String(validate=OneOf(WEEKDAYS)), validate=Length(max=7), metadata={
        "description": "Only on these days of the program's calendar; every day when absent"})


class BonusActionIn(Schema):
    points = _points(required=True)
    cap = WholeNumber(validate=Range(min=1, max=10_000), allow_none=True, metadata={
        "description": "At most this many per member (per `per`)"})
    per = String(validate=OneOf(CAP_PERIODS), metadata={"description": "The cap's period, default ever"})


BonusActionsIn = Schema.from_dict({kind: Nested(BonusActionIn, allow_none=True) for kind in BONUS_KINDS},
                                  name="BonusActionsIn")


class StampMilestoneIn(Schema):
    stamps = WholeNumber(required=True, validate=Range(min=1, max=MAX_STAMPS))
    reward = String(required=True, validate=Length(1, 120))


class TierRulesIn(Schema):
    basis = String(validate=OneOf(("points", "spend")), metadata={
        "description": "points earned or money spent in the window (default points)"})
    window_months = WholeNumber(validate=Range(min=1, max=120), metadata={"description": "default 12"})
    grace_days = WholeNumber(validate=Range(min=0, max=3650), metadata={
        "description": "Days after the review date before a downgrade (default 30)"})


class ReferralTierIn(Schema):
    from_ = WholeNumber(required=True, data_key="from", validate=Range(min=2, max=100_000), metadata={
        "description": "From the referrer's this-many-th completed referral on"})
    referrer_points = WholeNumber(required=True, validate=Range(min=0, max=MAX_POINTS))


class ReferralSettingsIn(Schema):
    trigger = String(required=True, validate=OneOf(REFERRAL_TRIGGERS), metadata={
        "description": "When both are rewarded: at sign-up, on the referee's first purchase, or on each purchase "
                       "within `within_days` of joining"})
    within_days = WholeNumber(validate=Range(min=1, max=3650), allow_none=True, metadata={
        "description": "Purchases count only this many days after the referee joined (required for every_purchase)"})
    referrer_points = WholeNumber(validate=Range(min=0, max=MAX_POINTS), metadata={"description": "default 0"})
    referee_points = WholeNumber(validate=Range(min=0, max=MAX_POINTS), metadata={"description": "default 0"})
    tiers = List(Nested(ReferralTierIn), validate=Length(max=10), metadata={
        "description": "More for the referrer from their Nth completed referral (the highest tier reached)"})
    max_referrals = WholeNumber(validate=Range(min=1, max=100_000), allow_none=True, metadata={
        "description": "Completed referrals rewarded per referrer; null: no cap"})
    max_per_referrer_per_day = WholeNumber(validate=Range(min=1, max=10_000), allow_none=True, metadata={
        "description": "Referrals per referrer per day of the program's calendar (default 10; null: no cap)"})
    max_per_ip_per_day = WholeNumber(validate=Range(min=1, max=10_000), allow_none=True, metadata={
        "description": "Referral enrollments per address per day (default 5; null: no cap)"})

    @validates_schema
    def _consistent(self, data, **_):
        if data.get("trigger") == "every_purchase" and not data.get("within_days"):
            raise ValidationError("Required when the trigger is every_purchase.", "within_days")
        if data.get("trigger") == "signup" and data.get("within_days"):
            raise ValidationError("Only for purchase triggers.", "within_days")
        if not (data.get("referrer_points") or data.get("referee_points") or data.get("tiers")):
            raise ValidationError("Give referrer_points, referee_points or tiers.", "referrer_points")
        starts = [tier["from_"] for tier in data.get("tiers") or ()]
        if len(set(starts)) != len(starts):
            raise ValidationError("Each tier needs its own `from`.", "tiers")


class ProgramIn(Schema):
    name = String(required=True, validate=Length(1, 200))
    slug = String(validate=[Length(*SLUG_LENGTH), Regexp(SLUG_PATTERN, error=SLUG_RULE)], metadata={
        "example": "cafe-bleu", "description": "The public name in /join/<slug>; made from the name when omitted; "
                                               "409 when another program has it"})
    # Regexp anchors only the start; `\Z`, unlike `$`, does not match before a trailing newline
    currency = String(validate=Regexp(r"[A-Z]{3}\Z", error="Must be an ISO 4217 code such as USD or JPY."))
    points_per_unit = DecimalText(high=10_000, places=4)
    rounding = String(validate=OneOf(tuple(ROUNDING)))
    branding = Nested(BrandingIn)
    tiers = List(Nested(TierIn), validate=Length(max=20))
    locales = List(String(validate=OneOf(LOCALES)), validate=Length(min=1, max=len(LOCALES)))
    barcode_format = String(validate=OneOf(tuple(BARCODE_FORMATS)))
    terms = String(validate=Length(max=4000), allow_none=True)
    program_info = String(validate=Length(max=4000), allow_none=True)
    timezone = String(validate=_time_zone, metadata={
        "example": "Asia/Tokyo", "enum": time_zone_names(),
        "description": "IANA time zone of the program's calendar (month ends, days); default UTC"})
    type = String(validate=OneOf(("points", "stamps")), metadata={"description": "default points"})
    stamps_required = WholeNumber(validate=Range(min=1, max=MAX_STAMPS), metadata={
        "description": "Stamps that fill a card (stamps programs)"})
    stamp_reward = String(validate=Length(1, 120), metadata={"description": "What a full card's voucher gives"})
    stamp_milestones = List(Nested(StampMilestoneIn), validate=Length(max=10), metadata={
        "description": "Vouchers on the way to a full card"})
    stamps_expire_days = WholeNumber(validate=Range(min=1, max=3650), allow_none=True, metadata={
        "description": "Stamps on a card expire this many days after the last one; null: never"})
    expiry = Nested(ExpiryIn)
    pending_days = WholeNumber(validate=Range(min=0, max=365), metadata={
        "description": "Earned points become spendable this many days later (a returns window); 0: at once"})
    earn_rules = Nested(EarnRulesIn)
    promotions = List(Nested(PromotionIn), validate=Length(max=20))
    bonus_actions = Nested(BonusActionsIn)
    tier_rules = Nested(TierRulesIn)
    referrals = Nested(ReferralSettingsIn, allow_none=True, metadata={
        "description": "Referral rewards and fraud caps; null turns them off"})


class ProgramPatch(ProgramIn):
    name = String(validate=Length(1, 200))


class TierOut(Schema):
    id = Integer()
    name = String()
    threshold = Integer()
    multiplier = DecimalOut()
    perks = String(allow_none=True)


class ExpiryOut(Schema):
    policy = String()
    days = Integer(allow_none=True)
    warn_days = Integer()


class EarnRulesOut(Schema):
    minimum_spend = String(allow_none=True)
    category_multipliers = Dict(keys=String(), values=String())
    excluded_categories = List(String())


class PromotionOut(Schema):
    name = String()
    multiplier = String()
    starts_at = String(allow_none=True)
    ends_at = String(allow_none=True)
    days_of_week = List(String(), allow_none=True)
    active = Boolean(metadata={"description": "Running now"})


class BonusActionOut(Schema):
    points = Integer()
    cap = Integer(allow_none=True)
    per = String()


class TierRulesOut(Schema):
    basis = String()
    window_months = Integer()
    grace_days = Integer()


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
    slug = String()
    enroll_url = String(metadata={"description": "The public enrollment page: PUBLIC_BASE_URL/join/<slug>"})
    currency = String()
    points_per_unit = DecimalOut()
    rounding = String()
    branding = Nested(BrandingOut)
    tiers = List(Nested(TierOut))
    rewards = List(Nested(RewardSummary))
    locales = List(String())
    barcode_format = String()
    terms = String(allow_none=True)
    program_info = String(allow_none=True)
    timezone = String()
    type = String()
    stamps_required = Integer(allow_none=True)
    stamp_reward = String(allow_none=True)
    stamp_milestones = List(Dict())
    stamps_expire_days = Integer(allow_none=True)
    expiry = Nested(ExpiryOut)
    pending_days = Integer()
    earn_rules = Nested(EarnRulesOut)
    promotions = List(Nested(PromotionOut))
    bonus_actions = Dict(keys=String(), values=Nested(BonusActionOut))
    tier_rules = Nested(TierRulesOut)
    referrals = Dict(allow_none=True, metadata={"description": "The referral settings as given (null: off)"})
    images = List(String())
    created_at = DateTime()




class ImagePath(Schema):
    program_id = Integer(required=True)
    kind = String(required=True, validate=OneOf(UPLOAD_KINDS))


class ImageUpload(Schema):
    """Other form fields are ignored, not refused: a multipart form may carry what a browser or client adds."""

    class Meta:
        unknown = EXCLUDE

    file = File(required=True, metadata={"description": "PNG or JPEG, at most 10 MB"})


class Phone(String):
    """An international number with its country code, spaces, dots, dashes and brackets allowed ("+81 90-1234-5678");
    kept as E.164 ("+819012345678"). One pattern checks and documents it (app/domain/members.py)."""

    def __init__(self, **kwargs):
        super().__init__(metadata={"example": "+81 90-1234-5678", "pattern": PHONE_PATTERN}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if re.fullmatch(PHONE_PATTERN, text) is None:
            raise ValidationError("Must be an international number with its country code, such as +81 90 1234 5678.")
        return "+" + "".join(char for char in text if char.isdigit())


class IpAddress(String):
    """An IPv4 or IPv6 address, kept in its compressed form."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return str(ipaddress.ip_address(text.strip()))
        except ValueError:
            raise ValidationError("Must be an IPv4 or IPv6 address.") from None


class MemberIn(Schema):
    name = String(required=True, validate=Length(1, 200))
    email = Email(validate=Length(max=254), allow_none=True)
    phone = Phone(allow_none=True)
    external_id = String(validate=Length(1, 120), allow_none=True)
    locale = String(validate=OneOf(LOCALES))
    referral_code = String(validate=Length(1, 16), allow_none=True)
    client_ip = IpAddress(allow_none=True, metadata={
        "description": "The customer's address as your site saw it: counts towards the referral velocity cap per "
                       "address (omit at a till, where every customer shares the shop's address)"})


class GoalOut(Schema):
    name = String()
    points_needed = Integer()


class GoogleWalletOut(Schema):
    saved = Boolean(metadata={"description": "The card is in someone's Google Wallet (Google's save/delete "
                                             "callbacks)"})


class AppleWalletOut(Schema):
    installed = Boolean(metadata={"description": "Registered on at least one device for updates (approximate: "
                                                 "turning automatic updates off unregisters too)"})
    devices = Integer(metadata={"description": "How many devices are registered for the card's updates"})


class WalletsOut(Schema):
    apple = Nested(AppleWalletOut)
    google = Nested(GoogleWalletOut)
class ExpiringOut(Schema):
    points = Integer()
    expires_at = DateTime()


class TierBenefitsOut(Schema):
    multiplier = DecimalOut()
    perks = String(allow_none=True)


class TierOverrideOut(Schema):
    tier = String()
    until = DateTime(allow_none=True)


class VoucherOut(Schema):
    id = Integer()
    name = String()
    created_at = DateTime()


class MembershipSummary(Schema):
    tier = String()
    ends_at = DateTime()


class LeaderboardEntryOut(Schema):
    opt_in = Boolean()
    display_name = String(allow_none=True, metadata={"description": "The only name the leaderboard shows"})


class MemberOut(Schema):
    id = Integer()
    program_id = Integer()
    name = String()
    email = String(allow_none=True)
    phone = String(allow_none=True)
    external_id = String(allow_none=True)
    locale = String()
    points_balance = Integer()
    held_points = Integer()
    available_points = Integer()
    lifetime_points = Integer()
    pending_points = Integer(metadata={"description": "Earned, spendable once the returns window passes"})
    stamps = Integer(metadata={"description": "Stamps on the current card (stamps programs)"})
    vouchers = List(Nested(VoucherOut), metadata={"description": "Vouchers full stamp cards issued, not yet used"})
    expiring = Nested(ExpiringOut, allow_none=True, metadata={"description": "The soonest points to expire"})
    tier = String(allow_none=True)
    tier_benefits = Nested(TierBenefitsOut, allow_none=True)
    tier_qualifying = DecimalOut(places=2, metadata={
        "description": "Points earned (or money spent) in the tier window"})
    tier_review_at = DateTime(allow_none=True, metadata={"description": "When the tier is next reviewed"})
    tier_override = Nested(TierOverrideOut, allow_none=True)
    membership = Nested(MembershipSummary, allow_none=True, metadata={"description": "A paid membership in force"})
    next_tier = Nested(GoalOut, allow_none=True)
    next_reward = Nested(GoalOut, allow_none=True)
    serial_number = String()
    barcode_value = String()
    referral_code = String()
    apple_pass_url = String()
    google_save_url = String(allow_none=True, metadata={
        "description": "A stable link that answers 302 to Google's Save to Google Wallet page; null without Google"})
    created_at = DateTime()
    wallets = Nested(WalletsOut)
    badges = List(String(), metadata={"description": "Badges won by challenges, in the order won"})
    leaderboard = Nested(LeaderboardEntryOut, metadata={"description": "Opt-in to the program's monthly leaderboard"})


class HoldSummary(Schema):
    id = Integer()
    status = String(metadata={"enum": ["held", "captured", "voided", "expired"]})
    points = Integer()
    reward = Nested(RewardSummary, allow_none=True)
    expires_at = DateTime()


class MemberMatch(Schema):
    id = Integer()
    program_id = Integer()
    name = String()


class LookupOut(MemberOut):
    redeemable_rewards = List(Nested(RewardSummary))
    active_holds = List(Nested(HoldSummary), metadata={"description": "Holds still counting, oldest first"})
    other_matches = List(Nested(MemberMatch), metadata={
        "description": "For a phone or email several members share (one per program, say): the others, newest "
                       "first; the member returned is the most recently enrolled"})
    rewards = List(Nested(RewardSummary), metadata={"description": "Every active reward, cheapest first"})


# Request bodies that take exactly one of some fields: schema name -> each group of fields.
EXACTLY_ONE = {"EarnIn": [("amount", "points", "items", "stamps")], "RedeemIn": [("points", "reward_id", "voucher_id")],
               "HoldIn": [("barcode", "member_id"), ("points", "reward_id")],
               "LookupIn": [("barcode", "phone", "email")], "SurpriseIn": [("points", "reward_id")]}


MAX_PURCHASE = 1_000_000_000  # the largest `amount` an earn takes, line items included


class LineItemIn(Schema):
    sku = String(validate=Length(1, 64), allow_none=True)
    category = String(validate=Length(1, 60), allow_none=True)
    amount = DecimalText(high=1_000_000, places=2, required=True, metadata={"description": "Unit price"})
    quantity = WholeNumber(validate=Range(min=1, max=10_000), load_default=1)


class EarnIn(Schema):
    amount = DecimalText(high=MAX_PURCHASE, places=2, metadata={
        "description": "Money spent, converted by the program's points_per_unit (rounded down by default)"})
    points = _points()
    items = List(Nested(LineItemIn), validate=Length(1, 200), metadata={
        "description": "Line items, under the program's category multipliers and exclusions"})
    stamps = WholeNumber(validate=Range(min=1, max=MAX_STAMPS_PER_EARN), metadata={
        "description": "Stamps to add (stamps programs)"})
    reference = String(validate=Length(1, 200), allow_none=True, metadata={"description": "e.g. the order id"})
    reason = String(validate=Length(1, 200), allow_none=True)

    @validates_schema
    def _one_of_amount_or_points(self, data, **_):
        _exactly_one(data, *EXACTLY_ONE["EarnIn"])
        if sum(item["amount"] * item["quantity"] for item in data.get("items", ())) > MAX_PURCHASE:
            raise ValidationError(f"The items may total at most {MAX_PURCHASE}.", "items")


class RedeemIn(Schema):
    points = _points()
    reward_id = _id()
    voucher_id = _id(metadata={"description": "A voucher a full stamp card issued"})
    reference = String(validate=Length(1, 200), allow_none=True)
    reason = String(validate=Length(1, 200), allow_none=True)

    @validates_schema
    def _one_of_points_or_reward(self, data, **_):
        _exactly_one(data, *EXACTLY_ONE["RedeemIn"])


class AdjustIn(Schema):
    points = WholeNumber(required=True, validate=Range(min=-MAX_POINTS, max=MAX_POINTS), metadata={
        "description": "Positive to credit, negative to debit, never 0; a debit never takes the balance below zero",
        "not": {"const": 0}})
    reason = String(required=True, validate=Length(1, 200), metadata={"description": "Shown in the statement"})
    reference = String(validate=Length(1, 200), allow_none=True)


class ReverseIn(Schema):
    points = _points(metadata={"description": "Reverse only part of the transaction"})
    reference = String(validate=Length(1, 200), allow_none=True)


class LookupIn(Schema):
    barcode = String(validate=Length(1, 200), metadata={"description": "The card's QR code or NFC payload"})
    phone = Phone()
    email = Email(validate=Length(max=254))

    @validates_schema
    def _one_way_to_find(self, data, **_):
        _exactly_one(data, *EXACTLY_ONE["LookupIn"])


class HoldIn(Schema):
    barcode = String(validate=Length(1, 200), metadata={"description": "The card's QR code or NFC payload"})
    member_id = _id()
    points = _points()
    reward_id = _id()
    ttl_seconds = WholeNumber(load_default=DEFAULT_TTL_SECONDS, validate=Range(min=1, max=MAX_TTL_SECONDS),
                              metadata={"description": "How long the points stay held unless captured or voided"})
    reference = String(validate=Length(1, 200), allow_none=True, metadata={"description": "e.g. the order id"})

    @validates_schema
    def _one_member_one_amount(self, data, **_):
        for fields in EXACTLY_ONE["HoldIn"]:
            _exactly_one(data, fields)


class TransactionOut(Schema):
    id = Integer()
    member_id = Integer()
    kind = String()
    points = Integer()
    balance_after = Integer()
    amount = DecimalOut(allow_none=True)
    reference = String(allow_none=True)
    reason = String(allow_none=True)
    reward_id = Integer(allow_none=True)
    reverses_id = Integer(allow_none=True)
    shortfall = Integer()
    held = Integer(metadata={"description": "Change of held points: + when a hold is placed, - when it ends"})
    hold_id = Integer(allow_none=True)
    api_key_id = Integer(allow_none=True, metadata={"description": "The API key that made it; null: the system"})
    store = String(allow_none=True, metadata={"description": "The store of that key's till"})
    rule = String(allow_none=True, metadata={"description": "The rules that produced it"})
    expires_at = DateTime(allow_none=True)
    pending_until = DateTime(allow_none=True)
    created_at = DateTime()


RECEIPT = {"description": "One line for the till to print, in the member's language "
                          "(\"+12 points · 152 available · 48 to Free Coffee\")"}


class AppliedRuleOut(Schema):
    rule = String(metadata={"description": "base_rate, category_multiplier, excluded_category, minimum_spend, "
                                           "tier_multiplier, promotion, rounding or bonus"})
    detail = String()
    multiplier = String(allow_none=True)


class TransactionResult(Schema):
    transaction = Nested(TransactionOut)
    member = Nested(MemberOut)
    shortfall = Integer(metadata={"description": "Reversed points the member had already spent"})
    receipt = String(metadata=RECEIPT)
    rules = List(Nested(AppliedRuleOut), metadata={"description": "How an earn was computed, in order"})


class MemberInHold(MemberOut):
    """The member inside a hold (a separate class for the reason RewardSummary gives)."""


class HoldOut(Schema):
    id = Integer()
    status = String(metadata={"enum": ["held", "captured", "voided", "expired"]})
    points = Integer()
    member_id = Integer()
    reward = Nested(RewardSummary, allow_none=True)
    reference = String(allow_none=True)
    expires_at = DateTime()
    created_at = DateTime()
    finished_at = DateTime(allow_none=True, metadata={"description": "When it was captured, voided or expired"})
    member = Nested(MemberInHold)
    transaction = Nested(TransactionOut, allow_none=True, metadata={
        "description": "The capture's transaction (reverse it to refund); null until captured"})
    receipt = String(allow_none=True, metadata={**RECEIPT, "description": RECEIPT["description"] + "; on capture"})


class BonusEventIn(Schema):
    kind = String(required=True, validate=OneOf(BONUS_KINDS))
    reference = String(validate=Length(1, 200), allow_none=True)


class TierOverrideIn(Schema):
    tier_id = _id(required=True, allow_none=True, metadata={"description": "null ends the override now"})
    until = Instant(allow_none=True, metadata={"description": "Required with a tier: an override always ends"})

    @validates_schema
    def _ends(self, data, **_):
        if data.get("tier_id") is not None and data.get("until") is None:
            raise ValidationError("An override needs an end date.", "until")


class PageQuery(Schema):
    limit = Integer(load_default=50, validate=Range(min=1, max=200))
    before = Integer(validate=Range(min=0, max=MAX_ID),
                     metadata={"description": "Cursor: the `next_before` of the previous page"})


class TransactionPage(Schema):
    data = List(Nested(TransactionOut))
    next_before = Integer(allow_none=True)


FCM_TOKEN_PATTERN = r"^[A-Za-z0-9_:.-]{16,1024}$"  # FCM registration tokens: base64url with ':' (≈160-250 chars)


def _matching(pattern: str, error: str) -> dict:
    """A string field's check by one regex, whole string only (Regexp's `$` also takes a trailing newline), and
    the same regex in /openapi.json."""
    def check(value: str) -> None:
        if not re.fullmatch(pattern, value):
            raise ValidationError(error)
    return {"validate": check, "metadata": {"pattern": pattern}}


_FCM_TOKEN = _matching(FCM_TOKEN_PATTERN, "Must be an FCM registration token: 16 to 1024 letters, digits and "
                                          "- _ : . characters.")


class DeviceIn(Schema):
    token = String(required=True, validate=_FCM_TOKEN["validate"], metadata={
        **_FCM_TOKEN["metadata"], "description": "The FCM registration token the merchant's app got from Firebase"})
    platform = String(required=True, validate=OneOf(("android", "ios", "web")))


class DevicePath(Schema):
    member_id = Integer(required=True)
    token = String(required=True, **_FCM_TOKEN)


class DeviceOut(Schema):
    member_id = Integer()
    token = String()
    platform = String()
    created_at = DateTime()
    updated_at = DateTime()


class FcmCredentialsIn(Schema):
    """The service-account key file from the Firebase console (Project settings > Service accounts), as is.
    Fields google-auth does not read are dropped."""

    class Meta:
        unknown = EXCLUDE

    type = String(required=True, validate=OneOf(("service_account",)))
    project_id = String(required=True, **_matching(PROJECT_ID_PATTERN, "Must be a Google Cloud project id."))
    private_key = String(required=True, validate=Length(1, 16_000),
                         metadata={"description": "PEM RSA private key; stored encrypted, never returned"})
    client_email = Email(required=True, validate=Length(max=254))
    private_key_id = String(validate=Length(max=200))
    client_id = String(validate=Length(max=200))
    token_uri = String(validate=Length(max=500), metadata={
        "description": "Google's token endpoint; another one only when FCM_BASE_URL points to a local fake"})
    auth_uri = String(validate=Length(max=500))
    auth_provider_x509_cert_url = String(validate=Length(max=500))
    client_x509_cert_url = String(validate=Length(max=500))
    universe_domain = String(validate=Length(max=200))


class FcmCredentialsOut(Schema):
    project_id = String()
    client_email = String()
    updated_at = DateTime()


class WebhookIn(Schema):
    url = String(required=True, validate=Length(1, MAX_URL_LENGTH), metadata={
        "description": "https (http, loopback and private addresses only with WEBHOOKS_ALLOW_PRIVATE_TARGETS=on); "
                       "link-local and metadata addresses are always refused", "example": "https://example.com/hooks"})
    events = List(String(validate=OneOf(EVENT_TYPES)), required=True, validate=Length(1, 50),
                  metadata={"description": "The event types to receive"})


class WebhookOut(Schema):
    id = Integer()
    url = String()
    events = List(String())
    created_at = DateTime()


class WebhookCreated(WebhookOut):
    secret = String(metadata={"description": "Signs every delivery (`Punchpass-Signature`); shown only here"})


class WebhookList(Schema):
    data = List(Nested(WebhookOut))


class WebhookAttemptOut(Schema):
    id = Integer()
    delivery_id = Integer()
    event_id = String()
    event_type = String()
    attempted_at = DateTime()
    status_code = Integer(allow_none=True, metadata={"description": "The receiver's answer; null when none came"})
    error = String(allow_none=True)
    duration_ms = Integer()
    next_retry_at = DateTime(allow_none=True, metadata={"description": "null: delivered, or no retry left"})
    delivery_status = String(metadata={"description": "pending, delivered or dead"})


class WebhookAttemptPage(Schema):
    data = List(Nested(WebhookAttemptOut))
    next_before = Integer(allow_none=True)


class WebhookDeliveryOut(Schema):
    id = Integer()
    webhook_id = Integer()
    event_id = String()
    event_type = String()
    status = String()
    next_retry_at = DateTime(allow_none=True)


# --- member and reward lifecycle (issue 11) ---


class MemberPatch(Schema):
    name = String(validate=Length(1, 200))
    email = Email(validate=Length(max=254), allow_none=True)
    phone = Phone(allow_none=True)
    locale = String(validate=OneOf(LOCALES))
    external_id = String(validate=Length(1, 120), allow_none=True)


class MemberQuery(PageQuery):
    q = String(validate=Length(1, 200), metadata={
        "description": "Part of the name, email, phone or external id (case ignored)"})
    tier = String(validate=Length(1, 60), metadata={"description": "Only members holding this tier (its name)"})


class MemberInList(MemberOut):
    """A member in a page of the list (a class of its own: see RewardSummary)."""


class MemberPage(Schema):
    data = List(Nested(MemberInList))
    next_before = Integer(allow_none=True, metadata={"description": "Pass as `before` for the next page"})


class JsonBoolean(Boolean):
    """`true` or `false` only: marshmallow's Boolean also takes 1, 0, "yes", "off"..., which the JSON schema in
    /openapi.json does not allow."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value


class RewardPatch(Schema):
    name = String(validate=Length(1, 120))
    points_cost = _points()
    active = JsonBoolean(metadata={"description": "false hides it and stops redemptions until set true again"})


class CounterEnrolIn(MemberIn):
    """Enrol at the counter (a POS key): the program the customer joins, and who they are."""
    program_id = _id(required=True)


class PairingCodeIn(Schema):
    store = String(validate=Length(1, 120), allow_none=True, metadata={
        "description": "The shop the paired till is in; the POS key made at pairing carries it"})
    ttl_seconds = WholeNumber(validate=Range(min=60, max=MAX_PAIRING_TTL), metadata={
        "description": f"How long the code works (default {DEFAULT_PAIRING_TTL})"})


class PairingCodeOut(Schema):
    code = String(metadata={"description": "8 characters the till types (or scans) on /checkout; works once"})
    store = String(allow_none=True)
    expires_at = DateTime()
    pair_url = String(metadata={"description": "/checkout with the code in the fragment: what the QR holds"})
    qr_svg = String(metadata={"description": "pair_url as a QR code (SVG), for a screen or a printout"})
class MembershipIn(Schema):
    tier_id = _id(required=True, metadata={"description": "The tier the paid period grants"})
    starts_at = Instant(metadata={"description": "Default now"})
    ends_at = Instant(required=True)
    amount = DecimalText(high=1_000_000_000, places=2, required=True, metadata={"description": "Money paid"})
    currency = String(validate=Regexp(r"[A-Z]{3}\Z", error="Must be an ISO 4217 code such as USD or JPY."),
                      metadata={"description": "Default the program's"})
    remind_days = WholeNumber(validate=Range(min=0, max=365), load_default=7, metadata={
        "description": "membership.renewal_due fires this many days before the end"})


class MembershipOut(Schema):
    id = Integer()
    member_id = Integer()
    tier = String(allow_none=True)
    starts_at = DateTime()
    ends_at = DateTime()
    amount = DecimalOut()
    currency = String()
    active = Boolean()


class MembershipList(Schema):
    data = List(Nested(MembershipOut))
