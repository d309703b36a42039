"""Program and member rows -> Google Wallet's class and object JSON (passes.google), and the member's save link.
Used by the save-link route and by the Google Wallet worker."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.card_notices import card_notices
from app.config import Config, GoogleConfig
from app.domain.googlewallet import class_suffix
from app.domain.relevance import merchant_locations
from app.domain.stamps import open_vouchers
from app.models import Member, Merchant, Program, ProgramImage
from passes.google import LoyaltyCard, LoyaltyProgram, loyalty_class_json, loyalty_object_json, resource_id

GOOGLE_IMAGES = {"logo": "logo@3x.png", "hero": "strip@3x.png"}  # what Google fetches -> the program's file


def google_save_url(config: Config, member: Member) -> str | None:
    """The member's stable save link: Punchpass answers it with a 302 to Google's save page (app/google). Public
    and unguessable like the Apple card link (the same token); None without Google."""
    if config.google is None:
        return None
    return f"{config.public_base_url}/google/save/{member.download_token}"


def class_id(google: GoogleConfig, program: Program) -> str:
    return resource_id(google.issuer_id, class_suffix(program))


def loyalty_class(session: Session, config: Config, program: Program) -> dict:
    """The program's LoyaltyClass. Its images are served by Punchpass (Google fetches them over HTTPS)."""
    google, base = config.google, config.public_base_url
    uploaded = set(session.scalars(select(ProgramImage.filename).where(ProgramImage.program_id == program.id)))
    tiers = program.tiers
    return loyalty_class_json(LoyaltyProgram(
        issuer_id=google.issuer_id, class_suffix=class_suffix(program),
        issuer_name=session.scalar(select(Merchant.name).where(Merchant.id == program.merchant_id)) or program.name,
        program_name=program.name, logo_url=f"{base}/google/programs/{program.id}/logo.png",
        hero_image_url=(f"{base}/google/programs/{program.id}/hero.png"
                        if GOOGLE_IMAGES["hero"] in uploaded else None),
        background_color=program.background_color, locales=tuple(program.locales or ()),
        # One class serves every member, so only a tier all of them hold can be the class's rewardsTier; members'
        # own tiers are on their objects.
        rewards_tier=tiers[0].name if len(tiers) == 1 else None,
        program_info=program.program_info, terms=program.terms, merchant_locations=merchant_locations(program),
        smart_tap_issuers=google.smart_tap_issuers,
        callback_url=f"{base}/google/callbacks" if base.startswith("https://") else None,
    ))


def loyalty_object(session: Session, config: Config, member: Member) -> dict:
    """The member's LoyaltyObject: what the Apple card shows on its front, with the same checkout token."""
    google, program = config.google, member.program
    return loyalty_object_json(LoyaltyCard(
        issuer_id=google.issuer_id, serial_number=member.serial_number, class_id=class_id(google, program),
        account_id=member.external_id or member.referral_code, account_name=member.name,
        points=member.available_points, barcode_value=member.barcode_token, barcode_format=program.barcode_format,
        locale=member.locale, locales=tuple(program.locales or ()), tier=member.tier.name if member.tier else None,
        has_tiers=bool(program.tiers), active=member.deleted_at is None,  # deleted on request: INACTIVE
        notices=card_notices(session, member), **_stamp_card(session, member),
    ))


def _stamp_card(session: Session, member: Member) -> dict:
    """A stamp card's count and open vouchers, as the Apple card shows them (app/cards.py)."""
    program = member.program
    if program.type != "stamps" or not program.stamps_required:
        return {}
    return {"stamps": (member.stamps, program.stamps_required),
            "vouchers": tuple(voucher.name for voucher in open_vouchers(session, member.id))}
