"""Google Wallet loyalty cards as plain JSON: the LoyaltyClass of a program, the LoyaltyObject of a member, the
changed fields of an update, and the "Save to Google Wallet" link (an RS256 JWT signed with a service-account key).

Field names and enum values are those of Google's walletobjects v1 API (its discovery document); nothing here
talks to Google. Facts worth knowing (Google Wallet API reference and FAQ):
- a class is inserted and every update re-sent with reviewStatus UNDER_REVIEW (a DRAFT class holds no objects, an
  approved one refuses updates without it);
- `rewardsTier` exists only on the class: a member's tier goes on the object as `secondaryLoyaltyPoints`;
- a save link longer than 1,800 characters may be cut by browsers, so once an object is inserted the JWT names it
  by id only ("skinny")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from passes.relevance import MAX_LOCATIONS  # merchantLocations: the same 10 as Apple
from passes.storecard import CardNotice, check_notices
from passes.strings import FALLBACK_LOCALE, TRANSLATIONS, resolve_locale

SAVE_URL_PREFIX = "https://pay.google.com/gp/v/save/"
MAX_SAFE_URL_LENGTH = 1800  # Google: "the maximum safe length" of a save link
MAX_MESSAGES = 10  # messages kept on an object
WALLET_SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
BARCODE_TYPES = {"qr": "QR_CODE", "pdf417": "PDF_417", "aztec": "AZTEC", "code128": "CODE_128"}
_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,200}")
_ISSUER = re.compile(r"[0-9]{1,20}")


GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
# Google Cloud: 6 to 30 lowercase letters, digits and hyphens, starting with a letter (old ones: "domain:id").
PROJECT_ID_PATTERN = r"^(?:[a-z0-9.-]{1,63}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$"
# The fields of the key file google-auth reads; anything else (in a merchant's upload) is dropped.
KEY_FILE_FIELDS = ("type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "auth_uri",
                   "token_uri", "auth_provider_x509_cert_url", "client_x509_cert_url", "universe_domain")


class ServiceAccountError(ValueError):
    """Not a usable service-account key; `field` names the part at fault. The message never quotes the key."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.reason = message


@dataclass(frozen=True)
class ServiceAccount:
    """A Google service-account key (the JSON file the Cloud console downloads), checked before it is used: what
    Google Wallet and Firebase sign their OAuth assertions and save links with. One reader for the instance's
    files and a merchant's upload, so both are refused for the same reasons."""
    client_email: str
    private_key_id: str
    private_key_pem: str = field(repr=False)
    token_uri: str
    info: dict = field(repr=False)  # the key file's fields, as google-auth and firebase-admin take them

    @property
    def project_id(self) -> str:
        return self.info["project_id"]

    @classmethod
    def from_file(cls, path: str | Path) -> ServiceAccount:
        try:
            return cls.from_json(Path(path).read_bytes())
        except OSError as error:
            raise ServiceAccountError("file", f"cannot read {str(path)!r}: {error.strerror or error}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> ServiceAccount:
        try:
            info = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise ServiceAccountError("_schema", "not JSON; expected the key file from the Google Cloud console"
                                      ) from None
        return cls.from_info(info)

    @classmethod
    def from_info(cls, info: object) -> ServiceAccount:
        """Checks what google-auth would only discover when it first asks for a token: the type, the project,
        the account's address and an RSA private key that parses."""
        if not isinstance(info, dict):
            raise ServiceAccountError("_schema", "expected a JSON object")
        if info.get("type") != "service_account":
            raise ServiceAccountError("type", 'must be "service_account" (a key file of a service account)')
        for name in ("project_id", "client_email", "private_key", "private_key_id"):
            if not isinstance(info.get(name), str) or not info[name]:
                raise ServiceAccountError(name, "missing")
        if not re.fullmatch(PROJECT_ID_PATTERN, info["project_id"]):
            raise ServiceAccountError("project_id", "not a Google Cloud project id")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", info["client_email"]):
            raise ServiceAccountError("client_email", "not an email address")
        _check_private_key(info["private_key"])
        token_uri = info.get("token_uri") or GOOGLE_TOKEN_URI
        if not (isinstance(token_uri, str) and re.match(r"https?://[^\s/]+", token_uri)):
            raise ServiceAccountError("token_uri", "not an http(s) URL")
        kept = {name: info[name] for name in KEY_FILE_FIELDS if info.get(name) is not None}
        return cls(info["client_email"], info["private_key_id"], info["private_key"], token_uri,
                   {**kept, "token_uri": token_uri})


def _check_private_key(pem: str) -> None:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ServiceAccountError("private_key", "not a PEM private key without a password") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ServiceAccountError("private_key", "Google signs with RSA keys; this is another kind")


def check_issuer_id(issuer_id: str) -> str:
    """Google issuer ids are digits."""
    if not _ISSUER.fullmatch(issuer_id or ""):
        raise ValueError(f"an issuer id is digits only, got {issuer_id!r}")
    return issuer_id


def resource_id(issuer_id: str, suffix: str) -> str:
    """`<issuer id>.<suffix>`, the id of a class or object; the suffix takes only letters, digits, `.`, `_`, `-`."""
    if not _SUFFIX.fullmatch(suffix):
        raise ValueError(f"an id suffix takes only A-Z, a-z, 0-9, '.', '_' and '-', got {suffix!r}")
    return f"{check_issuer_id(issuer_id)}.{suffix}"


def localized(texts: dict[str, str], default_locale: str) -> dict:
    """A LocalizedString: the default language's text plus its translations (`texts`: locale -> text)."""
    default = default_locale if default_locale in texts else next(iter(texts))
    return {"defaultValue": {"language": default, "value": texts[default]},
            "translatedValues": [{"language": locale, "value": text}
                                 for locale, text in texts.items() if locale != default]}


def translated(key: str, locales: Iterable[str], default_locale: str) -> dict:
    """One of our fixed card texts (passes/strings.py) in every locale the program speaks."""
    wanted = [resolve_locale(locale) for locale in locales] or [FALLBACK_LOCALE]
    return localized({locale: TRANSLATIONS[locale][key] for locale in dict.fromkeys(wanted)},
                     resolve_locale(default_locale))


@dataclass(frozen=True)
class Link:
    uri: str
    description: str


@dataclass(frozen=True)
class LoyaltyProgram:
    """What a program's LoyaltyClass shows. Image URLs must be public HTTPS: Google fetches them."""
    issuer_id: str
    class_suffix: str
    issuer_name: str
    program_name: str
    logo_url: str
    background_color: str = "#1F2937"  # #RRGGBB
    locales: tuple[str, ...] = (FALLBACK_LOCALE,)  # the first is the default language
    hero_image_url: str | None = None
    rewards_tier: str | None = None  # a tier every holder of the class has (the class is shared by all members)
    program_info: str | None = None
    terms: str | None = None
    links: tuple[Link, ...] = ()
    merchant_locations: tuple[tuple[float, float], ...] = ()  # (latitude, longitude), at most 10
    smart_tap_issuers: tuple[str, ...] = ()  # issuer ids whose Smart Tap keys may redeem the card
    callback_url: str | None = None  # HTTPS: Google posts save/delete callbacks there

    @property
    def class_id(self) -> str:
        return resource_id(self.issuer_id, self.class_suffix)


def loyalty_class_json(program: LoyaltyProgram) -> dict:
    """The LoyaltyClass, as inserted and as re-sent on every design change (always UNDER_REVIEW)."""
    if not re.fullmatch(r"#[0-9A-Fa-f]{6}", program.background_color):
        raise ValueError(f"background_color must be #RRGGBB, got {program.background_color!r}")
    if len(program.merchant_locations) > MAX_LOCATIONS:
        raise ValueError(f"at most {MAX_LOCATIONS} merchant locations, got {len(program.merchant_locations)}")
    locales, default = program.locales, program.locales[0] if program.locales else FALLBACK_LOCALE
    body = {
        "id": program.class_id,
        "issuerName": program.issuer_name,
        "programName": program.program_name,
        "programLogo": _image(program.logo_url, program.program_name, default),
        "hexBackgroundColor": program.background_color.upper(),
        "reviewStatus": "UNDER_REVIEW",
        "localizedAccountNameLabel": translated("member.label", locales, default),
        "textModulesData": _class_texts(program, locales, default),
    }
    if program.hero_image_url:
        body["heroImage"] = _image(program.hero_image_url, program.program_name, default)
    if program.rewards_tier:
        body["rewardsTier"] = program.rewards_tier
        body["localizedRewardsTierLabel"] = translated("tier.label", locales, default)
    if program.links:
        body["linksModuleData"] = {"uris": [{"uri": link.uri, "description": link.description, "id": f"link{n}"}
                                            for n, link in enumerate(program.links)]}
    if program.merchant_locations:
        body["merchantLocations"] = [{"latitude": lat, "longitude": lng} for lat, lng in program.merchant_locations]
    if program.smart_tap_issuers:
        body["enableSmartTap"] = True
        body["redemptionIssuers"] = [check_issuer_id(issuer) for issuer in program.smart_tap_issuers]
    if program.callback_url:
        body["callbackOptions"] = {"url": program.callback_url}
    return body


def _image(url: str, description: str, locale: str) -> dict:
    return {"sourceUri": {"uri": url}, "contentDescription": localized({locale: description}, locale)}


def _class_texts(program: LoyaltyProgram, locales: tuple[str, ...], default: str) -> list[dict]:
    modules = [{"id": "how_to_use", "localizedHeader": translated("how_to_use.label", locales, default),
                "localizedBody": translated("how_to_use.text", locales, default),
                "header": TRANSLATIONS[resolve_locale(default)]["how_to_use.label"],
                "body": TRANSLATIONS[resolve_locale(default)]["how_to_use.text"]}]
    for key, text in (("program_info", program.program_info), ("terms", program.terms)):
        if text:
            modules.append({"id": key, "localizedHeader": translated(f"{key}.label", locales, default),
                            "header": TRANSLATIONS[resolve_locale(default)][f"{key}.label"], "body": text})
    return modules


@dataclass(frozen=True)
class LoyaltyCard:
    """What a member's LoyaltyObject shows."""
    issuer_id: str
    serial_number: str  # never changes: the object id is `<issuer id>.<serial>`
    class_id: str
    account_id: str
    account_name: str
    points: int  # what the member can spend now (the balance less held points)
    barcode_value: str  # the same checkout token as the Apple card
    barcode_format: str = "qr"
    locale: str = FALLBACK_LOCALE
    locales: tuple[str, ...] = (FALLBACK_LOCALE,)
    tier: str | None = None  # None with tiers in the program: "Member"
    has_tiers: bool = False
    active: bool = True
    notices: tuple[CardNotice, ...] = ()  # program features' lines, as on the Apple card's back
    stamps: tuple[int, int] | None = None  # a stamp card: (stamps collected, stamps that fill the card)
    vouchers: tuple[str, ...] = ()  # rewards full stamp cards issued, not yet used

    @property
    def object_id(self) -> str:
        return resource_id(self.issuer_id, self.serial_number)


def loyalty_object_json(card: LoyaltyCard) -> dict:
    """The LoyaltyObject: inserted once, then patched with the fields that changed (`changed_fields`)."""
    if card.barcode_format not in BARCODE_TYPES:
        raise ValueError(f"barcode_format must be one of {', '.join(BARCODE_TYPES)}")
    locale = resolve_locale(card.locale)
    body = {
        "id": card.object_id,
        "classId": card.class_id,
        "state": "ACTIVE" if card.active else "INACTIVE",
        "accountId": card.account_id,
        "accountName": card.account_name,
        "loyaltyPoints": _headline(card, locale),
        "barcode": {"type": BARCODE_TYPES[card.barcode_format], "value": card.barcode_value},
        "smartTapRedemptionValue": card.barcode_value,
    }
    if card.has_tiers or card.tier:
        body["secondaryLoyaltyPoints"] = {"label": TRANSLATIONS[locale]["tier.label"],
                                          "localizedLabel": translated("tier.label", card.locales, locale),
                                          "balance": {"string": card.tier or TRANSLATIONS[locale]["tier.none"]}}
    check_notices(card.notices)
    modules = _voucher_module(card, locale) + [{"id": notice.key, "header": notice.label, "body": notice.text}
                                               for notice in card.notices]
    if modules:
        body["textModulesData"] = modules
    links = [{"id": notice.key, "uri": notice.link, "description": notice.label}
             for notice in card.notices if notice.link]
    if links:
        body["linksModuleData"] = {"uris": links}
    return body


def _headline(card: LoyaltyCard, locale: str) -> dict:
    """The object's big number: the points to spend, or a stamp card's count as "3/10" (Google's loyalty balance
    may be a string), as the Apple card shows it."""
    if card.stamps is None:
        return {"label": TRANSLATIONS[locale]["balance.label"],
                "localizedLabel": translated("balance.label", card.locales, locale), "balance": {"int": card.points}}
    collected, required = card.stamps
    return {"label": TRANSLATIONS[locale]["stamps.label"],
            "localizedLabel": translated("stamps.label", card.locales, locale),
            "balance": {"string": f"{collected}/{required}"}}


def _voucher_module(card: LoyaltyCard, locale: str) -> list[dict]:
    """A stamp card's open vouchers, one per line, first among the text modules (as on the Apple card's back)."""
    if not card.vouchers:
        return []
    return [{"id": "vouchers", "header": TRANSLATIONS[locale]["vouchers.label"],
             "localizedHeader": translated("vouchers.label", card.locales, locale), "body": "\n".join(card.vouchers)}]


_CLEARED = {"textModulesData": [], "linksModuleData": {"uris": []}}  # left out of a body when empty


def changed_fields(sent: dict | None, current: dict) -> dict:
    """The top-level fields of `current` that differ from what was last sent: a PATCH body (PATCH replaces each
    given field whole; fields left out stay as they are). Everything when nothing was sent yet."""
    if not sent:
        return dict(current)
    patch = {name: value for name, value in current.items() if sent.get(name) != value and name != "id"}
    # A module that was sent and is now left out (its last notice ended) is cleared, not kept by Google.
    patch.update({name: empty for name, empty in _CLEARED.items() if name in sent and name not in current})
    return patch


def save_jwt(account: ServiceAccount, *, origins: Iterable[str], issued_at: int, objects: list[dict],
             classes: list[dict] = ()) -> str:
    """The "Save to Google Wallet" JWT: RS256 with the service-account key (`kid` names it). `objects` are either
    `{"id": ...}` of objects already inserted (a short, "skinny" link) or whole objects Google creates on save,
    with their classes when those are not inserted yet. No `exp`: the link may sit in an e-mail for weeks."""
    payload = {"loyaltyObjects": list(objects)}
    if classes:
        payload["loyaltyClasses"] = list(classes)
    claims = {"iss": account.client_email, "aud": "google", "typ": "savetowallet", "iat": issued_at,
              "origins": list(origins), "payload": payload}
    return jwt.encode(claims, account.private_key_pem, algorithm="RS256", headers={"kid": account.private_key_id})


def save_url(token: str) -> str:
    return SAVE_URL_PREFIX + token
