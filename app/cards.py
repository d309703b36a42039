"""A member's row -> the signed `.pkpass`, served to the API, the public card link and the web service."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from flask import Response
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.card_assets import CardAssets
from app.card_notices import card_notices
from app.config import AppleConfig, Config
from app.domain import lots
from app.domain.calendar import last_day, program_zone
from app.domain.earnrules import plain
from app.domain.members import next_goals, without_expired_holds
from app.domain.passupdates import last_modified
from app.domain.relevance import card_locations
from app.domain.stamps import open_vouchers
from app.models import Member, SignedPass, utcnow
from app.services import app_config, services
from passes import PassSigner
from passes.personalization import personalization_files
from passes.stamps import MAX_STAMPS, stamp_strip
from passes.storecard import Branding, CardNotice, StoreCard, store_card_json

PKPASS_MIMETYPE = "application/vnd.apple.pkpass"


def card_settings_fingerprint(config: Config) -> str:
    """Every setting that goes into each card's bytes; when it changes, every card must be re-issued."""
    apple = config.apple
    settings = (config.web_service_url, apple.pass_type_id, apple.team_id, apple.nfc_public_key or "",
                str(apple.personalization))
    return hashlib.sha256("\n".join(settings).encode()).hexdigest()


def store_card(member: Member, pending_until: datetime | None = None, vouchers: tuple[str, ...] = (),
               notices: tuple[CardNotice, ...] = ()) -> StoreCard:
    """What the card shows, from the member and program rows (and, with pending points, the day the first
    pending lot becomes spendable; on a stamp card, the open vouchers)."""
    config, program = app_config(), member.program
    upcoming_tier, upcoming_reward = next_goals(member)
    zone = program_zone(program)
    locations, beacons = card_locations(program, member.locale)
    return StoreCard(
        pass_type_id=config.apple.pass_type_id, team_id=config.apple.team_id,
        serial_number=member.serial_number, authentication_token=member.auth_token,
        web_service_url=config.web_service_url, organization_name=program.name,
        description=f"{program.name} membership card", program_name=program.name, member_name=member.name,
        points_balance=member.available_points, barcode_value=member.barcode_token,
        tier=member.tier.name if member.tier else None, next_reward=upcoming_reward, next_tier=upcoming_tier,
        barcode_format=program.barcode_format,
        branding=Branding(background_color=program.background_color, foreground_color=program.foreground_color,
                          label_color=program.label_color, logo_text=program.logo_text),
        terms=program.terms, program_info=program.program_info, locales=tuple(program.locales),
        nfc_message=member.barcode_token if config.apple.nfc_public_key else None,
        nfc_encryption_public_key=config.apple.nfc_public_key, voided=member.deleted_at is not None,
        member_locale=member.locale,
        expiring=(member.next_expiry_points, last_day(zone, member.next_expiry_at)) if member.next_expiry_at else None,
        pending=(member.pending_points, pending_until.astimezone(zone).date())
        if member.pending_points and pending_until else None,
        promotion=program.shown_promotion, tier_perks=_benefits(member),
        stamps=(member.stamps, program.stamps_required) if _stamp_card(member) else None, vouchers=vouchers,
        notices=notices, locations=locations, beacons=beacons,
    )


def _benefits(member: Member) -> str | None:
    """The tier's earn multiplier (language-neutral "×1.5") and perks text."""
    tier = member.tier
    if tier is None:
        return None
    parts = [f"×{plain(tier.multiplier)}" if tier.multiplier is not None and tier.multiplier != 1 else "",
             tier.perks or ""]
    return " · ".join(filter(None, parts)) or None


def _stamp_card(member: Member) -> bool:
    return member.program.type == "stamps" and bool(member.program.stamps_required)


def signed_pass(session: Session, member: Member) -> bytes:
    """The member's signed pass, built once per content and kept in `signed_passes` (the caller commits). The
    cache key is the hash of everything that goes into the pass (its manifest) and the signing certificate,
    so any change of content, whatever caused it, is a new pass."""
    shared = services()
    member = without_expired_holds(session, member)  # the card shows available points as of now
    assets = shared.card_assets.get(session, member.program)
    pending_until = lots.next_release(session, member.id) if member.pending_points else None
    vouchers = tuple(v.name for v in open_vouchers(session, member.id)) if _stamp_card(member) else ()
    pass_json = store_card_json(store_card(member, pending_until, vouchers, card_notices(session, member)))
    files = {**_enrollment_files(member, assets), **_stamp_strip(member, assets.stamp_icon)}
    key = f"{assets.packager.content_digest(pass_json, files)}:{shared.signer_id}"
    cached = session.get(SignedPass, member.id)
    if cached is not None and cached.cache_key == key:
        return cached.data
    data = assets.packager.package(pass_json, shared.signer, files)
    _store_signed_pass(session, member.id, key, data)
    return data


def _store_signed_pass(session: Session, member_id: int, key: str, data: bytes) -> None:
    """An upsert: two devices fetching the same new version at once both store it, neither fails."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(SignedPass).values(member_id=member_id, cache_key=key, data=data)
    session.execute(statement.on_conflict_do_update(index_elements=[SignedPass.member_id],
                                                    set_={"cache_key": key, "data": data}))


def _stamp_strip(member: Member, icon: bytes | None) -> dict[str, bytes]:
    """A stamp card's strip: its stamps, the collected ones filled (label colour on the background) and marked
    with the program's stamp icon when one was uploaded."""
    if not _stamp_card(member):
        return {}
    program = member.program
    return stamp_strip(min(program.stamps_required, MAX_STAMPS), min(member.stamps, MAX_STAMPS),
                       program.background_color, program.label_color, icon)


def _enrollment_files(member: Member, assets: CardAssets) -> dict[str, bytes]:
    """Apple's "Sign up" sheet, on cards whose holder has not signed up yet (and only when switched on)."""
    if not app_config().apple.personalization or member.personalized_at is not None:
        return {}
    program = member.program
    return personalization_files(f"Join {program.name} rewards", terms=program.terms,
                                 logo_files=assets.personalization_logos)


def pkpass_response(session: Session, member: Member) -> Response:
    """The signed pass as a download; the caller commits (the signed bytes are cached in its transaction)."""
    response = Response(signed_pass(session, member), mimetype=PKPASS_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{_file_name(member.program.name)}.pkpass"'
    response.headers["Cache-Control"] = "no-store"
    response.last_modified = last_modified(member, utcnow())
    return response


def signer_id(signer: PassSigner) -> str:
    return hashlib.sha256(signer.cert_pem).hexdigest()[:16]


def load_signer(apple: AppleConfig) -> PassSigner:
    """Loaded once at start-up and checked against the configured ids (the first reason passes fail to open)."""
    signer = PassSigner.from_files(apple.pass_cert, apple.pass_key, apple.wwdr_cert, password=apple.key_password)
    signer.check(apple.pass_type_id, apple.team_id)
    return signer


def _file_name(program_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", program_name).strip("-").lower()
    return slug or "membership-card"
