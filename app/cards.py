"""A member's row -> the signed `.pkpass`. Program assets (images, strings) are hashed and zip-encoded once per
program design in a PassPackager; per member only pass.json, the manifest and the signature are new."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

from flask import Response, current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import app_config
from app.domain.rewards import next_reward
from app.domain.passupdates import last_modified
from app.domain.programs import program_images
from app.domain.tiers import next_tier
from app.models import Member, Program, SignedPass, utcnow
from passes import PassPackager, PassSigner
from passes.images import default_images, prepare_image
from passes.personalization import personalization_files
from passes.strings import pass_strings
from passes.storecard import Branding, StoreCard, store_card_json

PKPASS_MIMETYPE = "application/vnd.apple.pkpass"


class PackagerCache:
    """A bounded map (program id, design version) -> CardAssets, shared by the threads of one process."""

    def __init__(self, size: int = 128):
        self._size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, session: Session, program: Program) -> CardAssets:
        key = (program.id, program.design_version)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        assets = CardAssets.build(card_images(session, program), program.locales)
        with self._lock:
            self._items[key] = assets
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return assets


@dataclass(frozen=True)
class CardAssets:
    """What every card of one program design shares: the packaged images and strings, and the logo in
    Apple's smaller personalization size (made on first use: most programs never need it)."""

    packager: PassPackager
    logo: bytes

    @classmethod
    def build(cls, images: dict[str, bytes], locales: list[str]) -> CardAssets:
        return cls(PassPackager({**images, **pass_strings(locales)}), images["logo@3x.png"])

    @cached_property
    def personalization_logos(self) -> dict[str, bytes]:
        return prepare_image("personalizationLogo", self.logo)


def card_images(session: Session, program: Program) -> dict[str, bytes]:
    """The program's uploaded images over Punchpass's default icon and logo."""
    return {**default_images(), **program_images(session, program.id)}


def card_settings_fingerprint(config) -> str:
    """Every setting that goes into each card's bytes; when it changes, every card must be re-issued."""
    apple = config.apple
    settings = (config.web_service_url, apple.pass_type_id, apple.team_id, apple.nfc_public_key or "",
                str(apple.personalization))
    return hashlib.sha256("\n".join(settings).encode()).hexdigest()


def store_card(member: Member) -> StoreCard:
    """What the card shows, from the member and program rows."""
    config, program = app_config(), member.program
    available = member.points_balance - member.held_points
    upcoming_tier, upcoming_reward = next_tier(program, member.lifetime_points), next_reward(program, available)
    return StoreCard(
        pass_type_id=config.apple.pass_type_id, team_id=config.apple.team_id,
        serial_number=member.serial_number, authentication_token=member.auth_token,
        web_service_url=config.web_service_url, organization_name=program.name,
        description=f"{program.name} membership card", program_name=program.name, member_name=member.name,
        points_balance=member.points_balance, barcode_value=member.barcode_token,
        tier=member.tier.name if member.tier else None,
        next_reward=(upcoming_reward.name, upcoming_reward.points_cost - available) if upcoming_reward else None,
        next_tier=(upcoming_tier[0].name, upcoming_tier[1]) if upcoming_tier else None,
        barcode_format=program.barcode_format,
        branding=Branding(background_color=program.background_color, foreground_color=program.foreground_color,
                          label_color=program.label_color, logo_text=program.logo_text),
        terms=program.terms, program_info=program.program_info, locales=tuple(program.locales),
        nfc_message=member.barcode_token if config.apple.nfc_public_key else None,
        nfc_encryption_public_key=config.apple.nfc_public_key,
    )


def signed_pass(session: Session, member: Member) -> bytes:
    """The member's signed pass, built once per content and kept in `signed_passes`. The cache key is the hash
    of everything that goes into the pass (its manifest) and the signing certificate, so any change of
    content, whatever caused it, is a new pass."""
    state = current_app.extensions["punchpass"]
    assets = state["packagers"].get(session, member.program)
    pass_json, files = store_card_json(store_card(member)), _enrollment_files(member, assets)
    key = f"{assets.packager.content_digest(pass_json, files)}:{state['signer_id']}"
    cached = session.get(SignedPass, member.id)
    if cached is not None and cached.cache_key == key:
        return cached.data
    data = assets.packager.package(pass_json, state["signer"], files)
    try:
        session.merge(SignedPass(member_id=member.id, cache_key=key, data=data))
        session.commit()
    except IntegrityError:  # another process cached the same version first
        session.rollback()
    return data


def _enrollment_files(member: Member, assets: CardAssets) -> dict[str, bytes]:
    """Apple's "Sign up" sheet, on cards whose holder has not signed up yet (and only when switched on)."""
    if not app_config().apple.personalization or member.personalized_at is not None:
        return {}
    program = member.program
    return personalization_files(f"Join {program.name} rewards", terms=program.terms,
                                 logo_files=assets.personalization_logos)


def pkpass_response(session: Session, member: Member) -> Response:
    response = Response(signed_pass(session, member), mimetype=PKPASS_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{_file_name(member.program.name)}.pkpass"'
    response.headers["Cache-Control"] = "no-store"
    response.last_modified = last_modified(member, utcnow())
    return response


def signer_id(signer: PassSigner) -> str:
    return hashlib.sha256(signer.cert_pem).hexdigest()[:16]


def load_signer(apple) -> PassSigner:
    """Loaded once at start-up and checked against the configured ids (the first reason passes fail to open)."""
    signer = PassSigner.from_files(apple.pass_cert, apple.pass_key, apple.wwdr_cert, password=apple.key_password)
    signer.check(apple.pass_type_id, apple.team_id)
    return signer


def _file_name(program_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", program_name).strip("-").lower()
    return slug or "membership-card"
