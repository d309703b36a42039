"""What a Punchpass membership card shows, and its Apple `pass.json` (storeCard style).

Plain values in, a dict out: no app, no database. Labels and fixed texts are keys
of `passes.strings` (resolved on the device); merchant texts are literal values.
"""

import base64
import binascii
import html
import re
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from passes.relevance import Beacon, Location, beacons_json, check_counts, locations_json
from passes.strings import LOCALES, points_notice

BARCODE_FORMATS = {
    "qr": "PKBarcodeFormatQR",
    "pdf417": "PKBarcodeFormatPDF417",
    "aztec": "PKBarcodeFormatAztec",
    "code128": "PKBarcodeFormatCode128",
}
MIN_AUTHENTICATION_TOKEN_LENGTH = 16  # Apple: webServiceURL requires a token of >= 16 chars
MAX_NFC_MESSAGE_BYTES = 64  # Apple: longer NFC payloads are truncated by the device
MAX_FRONT_DETAIL_FIELDS = 4  # Apple: store cards show <= 4 secondary + auxiliary fields
_HEX_COLOUR = re.compile(r"#([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})")


class Goal(NamedTuple):
    """Something the member is working towards: a reward or the next tier."""

    name: str
    points_needed: int


@dataclass(frozen=True, kw_only=True)
class Branding:
    """The card's colours (`#RRGGBB`) and the text beside the logo."""

    background_color: str = "#1E2A44"
    foreground_color: str = "#FFFFFF"
    label_color: str = "#F2B84B"
    logo_text: str | None = None  # None: the program name; "": no text (logo carries it)

    def __post_init__(self) -> None:
        for name in ("background_color", "foreground_color", "label_color"):
            if not _HEX_COLOUR.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} must be a colour like #1E2A44")


def apple_colour(hex_colour: str) -> str:
    """`#RRGGBB` as Apple's `rgb(r, g, b)`."""
    red, green, blue = (int(part, 16) for part in _HEX_COLOUR.fullmatch(hex_colour).groups())
    return f"rgb({red}, {green}, {blue})"


MAX_NOTICES = 10  # lines program features may add to a card's back (Google keeps at most 10 text modules too)


@dataclass(frozen=True)
class CardNotice:
    """A line a program feature puts on the card's back (an offer, a challenge's progress, a survey link), the same
    on the Apple pass and the Google object. `label` and `text` are literal, already in the member's language;
    with `change_message` ("%@" is the new text) Wallet shows a notification when the text changes; `link` makes
    the text tappable."""

    key: str  # stable per feature and item ("offer_12"), so Wallet can tell a change from a new line
    label: str
    text: str
    change_message: str | None = None
    link: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoreCard:
    """Everything one member's card shows; validated on construction."""

    pass_type_id: str
    team_id: str
    serial_number: str
    authentication_token: str | None
    web_service_url: str | None  # base URL without /v1 (the device appends it); None: no updates
    organization_name: str
    description: str
    program_name: str
    member_name: str
    points_balance: int
    barcode_value: str
    tier: str | None = None
    next_reward: Goal | None = None
    next_tier: Goal | None = None
    barcode_format: str = "qr"
    barcode_alt_text: str | None = None  # printed under the code, for typing it in by hand
    branding: Branding = field(default_factory=Branding)
    terms: str | None = None
    program_info: str | None = None
    nfc_message: str | None = None
    nfc_encryption_public_key: str | None = None  # Base64 X.509 SubjectPublicKeyInfo, EC P-256
    nfc_requires_authentication: bool = False
    locales: tuple[str, ...] = LOCALES
    voided: bool = False  # Apple: Wallet shows the pass as void (the member was deleted)
    member_locale: str = "en"  # the language of the sentences below (they carry a number and a day)
    expiring: tuple[int, date] | None = None  # the soonest points to expire and their last day
    pending: tuple[int, date] | None = None  # points not spendable yet and the day they become so
    promotion: str | None = None  # the promotion running now ("Double weekend x2"), merchant text
    tier_perks: str | None = None  # what the tier gives, merchant text
    stamps: tuple[int, int] | None = None  # a stamp card: (stamps collected, stamps that fill the card)
    vouchers: tuple[str, ...] = ()  # rewards full stamp cards issued, not yet used
    notices: tuple[CardNotice, ...] = ()  # program features' lines (app/card_notices.py)
    locations: tuple[Location, ...] = ()  # the shops: the card surfaces near them (passes/relevance.py)
    beacons: tuple[Beacon, ...] = ()

    def __post_init__(self) -> None:
        for name in ("pass_type_id", "team_id", "serial_number", "organization_name",
                     "description", "program_name", "barcode_value"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if type(self.points_balance) is not int:
            raise ValueError("points_balance must be an int")
        object.__setattr__(self, "next_reward", _goal("next_reward", self.next_reward))
        object.__setattr__(self, "next_tier", _goal("next_tier", self.next_tier))
        object.__setattr__(self, "locales", tuple(self.locales))
        _check_web_service(self.web_service_url, self.authentication_token)
        _check_barcode(self.barcode_format, self.barcode_value)
        if self.nfc_message is not None:
            check_nfc(self.nfc_message, self.nfc_encryption_public_key)
        check_notices(self.notices)
        check_counts(self.locations, self.beacons)


def _goal(name: str, value: Goal | tuple | None) -> Goal | None:
    """Accept `(name, points_needed)` tuples; a goal already met needs 0 points."""
    if value is None:
        return None
    goal_name, points_needed = value
    if not goal_name or type(points_needed) is not int:
        raise ValueError(f"{name} must be (name, points_needed: int)")
    return Goal(goal_name, max(points_needed, 0))


def _check_web_service(url: str | None, token: str | None) -> None:
    """Apple: the device appends `/v1/...` itself, and a token of >= 16 chars is required."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("web_service_url must be an http(s) URL")
    if url.rstrip("/").endswith("/v1"):
        raise ValueError("web_service_url must not end with /v1: the device appends it")
    if token is None or len(token) < MIN_AUTHENTICATION_TOKEN_LENGTH:
        raise ValueError(
            f"authentication_token must be at least {MIN_AUTHENTICATION_TOKEN_LENGTH} characters"
        )


def _check_barcode(barcode_format: str, value: str) -> None:
    """The format must be one Wallet knows and the message must fit iso-8859-1."""
    if barcode_format not in BARCODE_FORMATS:
        raise ValueError(f"barcode_format must be one of {', '.join(BARCODE_FORMATS)}")
    try:
        value.encode("iso-8859-1")
    except UnicodeEncodeError:
        raise ValueError("barcode_value must be iso-8859-1 text") from None


def check_notices(notices: tuple[CardNotice, ...]) -> None:
    """At most MAX_NOTICES, each with its own key and some text."""
    if len(notices) > MAX_NOTICES:
        raise ValueError(f"at most {MAX_NOTICES} notices, got {len(notices)}")
    keys = [notice.key for notice in notices]
    if len(set(keys)) != len(keys) or not all(re.fullmatch(r"[a-z0-9_]{1,40}", key) for key in keys):
        raise ValueError("notice keys must be distinct, lower-case letters, digits and _")
    if not all(notice.label and notice.text for notice in notices):
        raise ValueError("a notice needs a label and a text")


def check_nfc(message: str, public_key: str | None) -> None:
    """Apple: message <= 64 bytes; encryptionPublicKey is a Base64 P-256 SubjectPublicKeyInfo."""
    if not message or len(message.encode("utf-8")) > MAX_NFC_MESSAGE_BYTES:
        raise ValueError(f"nfc_message must be 1 to {MAX_NFC_MESSAGE_BYTES} bytes")
    if not public_key:
        raise ValueError("nfc_encryption_public_key is required with nfc_message")
    try:
        key = load_der_public_key(base64.b64decode(public_key, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("nfc_encryption_public_key must be a Base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("nfc_encryption_public_key must be an EC P-256 key")


def store_card_json(card: StoreCard) -> dict:
    """The card's `pass.json`; never a `relevantDate`: Wallet files a store card with one as expired a day
    later (reported on dotnet-passbook #186; Apple deprecated it for relevantDates in iOS 18)."""
    pass_json = {
        "formatVersion": 1,
        "passTypeIdentifier": card.pass_type_id,
        "teamIdentifier": card.team_id,
        "serialNumber": card.serial_number,
        "organizationName": card.organization_name,
        "description": card.description,
        "backgroundColor": apple_colour(card.branding.background_color),
        "foregroundColor": apple_colour(card.branding.foreground_color),
        "labelColor": apple_colour(card.branding.label_color),
        "sharingProhibited": True,  # a membership card is personal
        "barcodes": [_barcode(card)],
        "storeCard": _store_card_fields(card),
    }
    logo_text = card.program_name if card.branding.logo_text is None else card.branding.logo_text
    if logo_text:
        pass_json["logoText"] = logo_text
    if card.web_service_url is not None:
        pass_json["webServiceURL"] = card.web_service_url.rstrip("/")
        pass_json["authenticationToken"] = card.authentication_token
    if card.voided:
        pass_json["voided"] = True
    if card.locations:
        pass_json["locations"] = locations_json(card.locations)
    if card.beacons:
        pass_json["beacons"] = beacons_json(card.beacons)
    if card.nfc_message is not None:
        pass_json["nfc"] = {
            "message": card.nfc_message,
            "encryptionPublicKey": card.nfc_encryption_public_key,
            "requiresAuthentication": card.nfc_requires_authentication,
        }
    return pass_json


def _barcode(card: StoreCard) -> dict:
    """One `barcodes` entry; no legacy `barcode` key (iOS 9+ reads the array, it lacks Code128)."""
    barcode = {
        "format": BARCODE_FORMATS[card.barcode_format],
        "message": card.barcode_value,
        "messageEncoding": "iso-8859-1",
    }
    if card.barcode_alt_text:
        barcode["altText"] = card.barcode_alt_text
    return barcode


def _store_card_fields(card: StoreCard) -> dict:
    """Front: balance, then name/tier and the nearest goal (<= 4 fields); the rest on the back."""
    secondary = [*_stamp_fields(card), *_member_fields(card), *_tier_fields(card)]
    room = MAX_FRONT_DETAIL_FIELDS - len(secondary)
    auxiliary, back_goals = _place_goals(_goal_fields(card), room)
    return {
        "primaryFields": [_balance_field(card)],
        "secondaryFields": secondary,
        "auxiliaryFields": auxiliary,
        "backFields": [*back_goals, *_back_fields(card)],
    }


def _field(key: str, label: str, value: str | int, **extra) -> dict:
    """One pass field; `label` is always a `pass.strings` key."""
    return {"key": key, "label": label, "value": value, **extra}


def _balance_field(card: StoreCard) -> dict:
    """Contract: the balance is the bare number with a `%@` change message."""
    return _field("balance", "balance.label", card.points_balance,
                  changeMessage="balance.changed", numberStyle="PKNumberStyleDecimal")


def _stamp_fields(card: StoreCard) -> list[dict]:
    """A stamp card's count, "3/10" (the strip image shows the same)."""
    if card.stamps is None:
        return []
    collected, required = card.stamps
    return [_field("stamps", "stamps.label", f"{collected}/{required}", changeMessage="stamps.changed")]


def _member_fields(card: StoreCard) -> list[dict]:
    """The member's name, when we know it."""
    return [_field("member", "member.label", card.member_name)] if card.member_name else []


def _tier_fields(card: StoreCard) -> list[dict]:
    """Show the tier (or 'Member' below the first tier); hide it when the program has no tiers."""
    if card.tier is None and card.next_tier is None:
        return []
    return [_field("tier", "tier.label", card.tier or "tier.none", changeMessage="tier.changed")]


def _goal_fields(card: StoreCard) -> list[list[dict]]:
    """Each goal as a pair of fields (its name, points still needed), reward first."""
    goals = []
    if card.next_reward is not None:
        goals.append(_goal_pair("next_reward", "points_to_reward", card.next_reward))
    if card.next_tier is not None:
        goals.append(_goal_pair("next_tier", "points_to_tier", card.next_tier))
    return goals


def _goal_pair(name_key: str, points_key: str, goal: Goal) -> list[dict]:
    """A goal's name (merchant text) and the points to go, or 'Ready!' once reached."""
    points: dict = {"numberStyle": "PKNumberStyleDecimal"} if goal.points_needed else {}
    return [
        _field(name_key, f"{name_key}.label", goal.name),
        _field(points_key, f"{points_key}.label", goal.points_needed or "goal.reached", **points),
    ]


def _place_goals(goals: list[list[dict]], room: int) -> tuple[list[dict], list[dict]]:
    """Split goals into (front, back): a goal goes on the front only if both its fields fit."""
    front: list[dict] = []
    back: list[dict] = []
    for pair in goals:
        (front if len(front) + len(pair) <= room else back).extend(pair)
    return front, back


def _state_fields(card: StoreCard) -> list[dict]:
    """Lots and offers: what expires when, what is pending, the promotion running, the tier's benefits."""
    fields = []
    for name, state in (("expiring", card.expiring), ("pending", card.pending)):
        if state is not None and state[0] > 0:
            fields.append(_field(name, f"{name}.label", points_notice(name, card.member_locale, *state)))
    if card.promotion:
        fields.append(_field("promotion", "promotion.label", card.promotion))
    if card.tier_perks:
        fields.append(_field("perks", "perks.label", card.tier_perks))
    if card.vouchers:
        fields.append(_field("vouchers", "vouchers.label", "\n".join(card.vouchers)))
    return [*fields, *map(_notice_field, card.notices)]


def _notice_field(notice: CardNotice) -> dict:
    """A feature's line; its label is literal text (no pass.strings key matches it, so Wallet shows it as is)."""
    extra: dict = {}
    if notice.change_message:
        extra["changeMessage"] = notice.change_message
    if notice.link:
        extra["attributedValue"] = f'<a href="{html.escape(notice.link)}">{html.escape(notice.text)}</a>'
    return _field(f"notice_{notice.key}", notice.label, notice.text, **extra)


def _back_fields(card: StoreCard) -> list[dict]:
    """Lots and offers, how to use the card, live updates, then the merchant's own texts."""
    fields = [*_state_fields(card), _field("how_to_use", "how_to_use.label", "how_to_use.text")]
    if card.web_service_url is not None:
        fields.append(_field("updates", "updates.label", "updates.text"))
    fields.append(_field("program", "program.label", card.program_name))
    if card.program_info:
        fields.append(_field("program_info", "program_info.label", card.program_info))
    if card.terms:
        fields.append(_field("terms", "terms.label", card.terms))
    return fields
