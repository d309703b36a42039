"""A member's life after enrolment: corrections to their details, the merchant's search, deletion on request.

Deletion is what Japan's APPI, Korea's PIPA and the GDPR ask of a "delete my data" request: the personal data
goes (name, email, phone, the merchant's external id), the ledger stays (accounting must still add up, and its
rows carry no personal data of their own), and the card in the customer's wallet is voided (`voided: true`,
pushed to its devices) rather than left showing points that can no longer be spent. The member's row stays as
the anchor of its ledger; every lookup skips it from then on, while the card link and Apple's web service still
answer the voided pass, so a device that asks gets the truth."""

from __future__ import annotations

import secrets

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from app.domain.errors import Conflict, InvalidInput
from app.domain.events import emit
from app.domain.leaderboard import forget_boards
from app.domain.ledger import lock_member
from app.domain.passupdates import card_changed
from app.models import Member, Program, Tier, utcnow
from passes.strings import LOCALES

EDITABLE_FIELDS = ("name", "email", "phone", "locale", "external_id")
SHOWN_ON_CARD = ("name",)  # a change of these re-issues the card
DELETED_NAME = "Deleted member"


def update_member(session: Session, member: Member, data: dict) -> Member:
    """Change any of EDITABLE_FIELDS (None clears an optional one); the card updates when a field it shows
    changed. An external_id another member of the program has is a 409."""
    member = lock_member(session, member)
    changes = {name: data[name] for name in EDITABLE_FIELDS if name in data}
    if "name" in changes and not changes["name"]:
        raise InvalidInput("name", "Must not be empty.")
    if changes.get("locale") not in (None, *LOCALES):
        raise InvalidInput("locale", f"Supported locales are {', '.join(LOCALES)}.")
    if "locale" in changes and changes["locale"] is None:
        del changes["locale"]
    if changes.get("email"):
        changes["email"] = changes["email"].strip().lower()  # emails compare without case at the counter
    external_id = changes.get("external_id")
    if external_id and external_id != member.external_id and _external_id_taken(session, member, external_id):
        raise _taken(external_id)
    card_shows_a_change = any(getattr(member, name) != changes[name] for name in SHOWN_ON_CARD if name in changes)
    for name, value in changes.items():
        setattr(member, name, value)
    try:
        session.flush()
    except IntegrityError:  # the same external_id committed by another request since the check
        raise _taken(external_id) from None
    if card_shows_a_change:
        card_changed(session, member)
    return member


def search_members(session: Session, program: Program, *, query: str | None = None, tier: str | None = None,
                   before: int | None = None, limit: int = 50) -> list[Member]:
    """The program's members, newest first, `limit` of them with ids below `before` (keyset pages: stable while
    members join). `query` matches part of the name, email, phone or external id, ignoring case; `tier` is a
    tier's name. Deleted members are never listed."""
    statement = (select(Member).where(Member.program_id == program.id, Member.deleted_at.is_(None))
                 .options(joinedload(Member.program_row).joinedload(Program.tiers)))
    if query:
        pattern = query.strip().lower()
        statement = statement.where(or_(*(func.lower(column).contains(pattern, autoescape=True) for column in
                                          (Member.name, Member.email, Member.phone, Member.external_id))))
    if tier:
        statement = statement.where(Member.tier_id.in_(
            select(Tier.id).where(Tier.program_id == program.id, Tier.name == tier)))
    if before:
        statement = statement.where(Member.id < before)
    return list(session.scalars(statement.order_by(Member.id.desc()).limit(limit)).unique())


def delete_member(session: Session, member: Member) -> Member:
    """Anonymise the member, void their card (pushed to its devices), and tell the merchant's listeners
    (`member.deleted`). The ledger is kept; lookups stop finding the member: their checkout code is replaced
    and get/earn/redeem skip a deleted member."""
    member = lock_member(session, member)
    member.name, member.email, member.phone, member.external_id = DELETED_NAME, None, None, None
    member.leaderboard_opt_in, member.leaderboard_name = False, None  # a chosen nickname is personal data too
    forget_boards(session, member.program_id)
    member.barcode_token = secrets.token_urlsafe(18)  # the printed or saved code finds nobody any more
    member.deleted_at = utcnow()
    card_changed(session, member)  # the voided pass, pushed to every registered device
    emit(session, merchant_id=member.merchant_id, type="member.deleted", member_id=member.id,
         program_id=member.program_id, data={"member_id": member.id, "program_id": member.program_id,
                                             "deleted_at": member.deleted_at.isoformat()})
    session.flush()
    return member


def _external_id_taken(session: Session, member: Member, external_id: str) -> bool:
    other = session.scalar(select(Member.id).where(Member.program_id == member.program_id,
                                                   Member.external_id == external_id, Member.id != member.id))
    return other is not None


def _taken(external_id: str) -> Conflict:
    return Conflict(f"A member with external_id {external_id!r} already exists in this program.")
