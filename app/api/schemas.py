"""Request and response shapes. The same schemas validate requests and generate /openapi.json."""

from __future__ import annotations

import re
from decimal import Decimal as D

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Decimal, Email, Field, File, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import EXCLUDE, ValidationError, validates_schema

from app.domain.calendar import is_time_zone, time_zone_names
from app.domain.events import EVENT_TYPES
from app.domain.holds import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS
from app.domain.ledger import MAX_POINTS, ROUNDING
from app.domain.members import PHONE_PATTERN
from app.domain.programs import SLUG_LENGTH, SLUG_PATTERN, SLUG_RULE
from app.domain.webhook_targets import MAX_URL_LENGTH
from app.pairing import DEFAULT_TTL_SECONDS as DEFAULT_PAIRING_TTL
from app.pairing import MAX_TTL_SECONDS as MAX_PAIRING_TTL
from app.service_accounts import PROJECT_ID_PATTERN
from app.untrusted import MAX_ID
from passes.images import UPLOAD_KINDS
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
        super().__init__(as_string=True, metadata={"type": "string", "format": "decimal"}, **kwargs)


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
    threshold = WholeNumber(required=True, validate=Range(min=0, max=MAX_POINTS))


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


class MemberIn(Schema):
    name = String(required=True, validate=Length(1, 200))
    email = Email(validate=Length(max=254), allow_none=True)
    phone = Phone(allow_none=True)
    external_id = String(validate=Length(1, 120), allow_none=True)
    locale = String(validate=OneOf(LOCALES))
    referral_code = String(validate=Length(1, 16), allow_none=True)


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
    tier = String(allow_none=True)
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
EXACTLY_ONE = {"EarnIn": [("amount", "points")], "RedeemIn": [("points", "reward_id")],
               "HoldIn": [("barcode", "member_id"), ("points", "reward_id")],
               "LookupIn": [("barcode", "phone", "email")]}


class EarnIn(Schema):
    amount = DecimalText(high=1_000_000_000, places=2, metadata={
        "description": "Money spent, converted by the program's points_per_unit (rounded down by default)"})
    points = _points()
    reference = String(validate=Length(1, 200), allow_none=True, metadata={"description": "e.g. the order id"})
    reason = String(validate=Length(1, 200), allow_none=True)

    @validates_schema
    def _one_of_amount_or_points(self, data, **_):
        _exactly_one(data, *EXACTLY_ONE["EarnIn"])


class RedeemIn(Schema):
    points = _points()
    reward_id = _id()
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
    created_at = DateTime()


RECEIPT = {"description": "One line for the till to print, in the member's language "
                          "(\"+12 points · 152 available · 48 to Free Coffee\")"}


class TransactionResult(Schema):
    transaction = Nested(TransactionOut)
    member = Nested(MemberOut)
    shortfall = Integer(metadata={"description": "Reversed points the member had already spent"})
    receipt = String(metadata=RECEIPT)


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
