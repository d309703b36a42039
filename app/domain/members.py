"""Enrolment and look-up. Every token a member carries is random: the database id never leaves the API."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.event_data import member_event
from app.domain.events import emit
from app.domain.ledger import HELD, lock_member
from app.domain.passupdates import card_changed
from app.domain.program_config import select_member, use_config
from app.domain.referrals import record_referral
from app.domain.rewards import next_reward
from app.domain.tiers import next_tier, start_tier
from app.models import Hold, Member, Program, utcnow
from passes import Goal
from passes.strings import FALLBACK_LOCALE, LOCALES

_WITH_TIERS = joinedload(Member.program_row).joinedload(Program.tiers)  # a handful of rows, one statement fewer
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a till
# An international number as people write it: "+", the country code, then 8 to 15 digits in all (E.164), with
# at most two of space . ( ) - between digits. Stored as "+" and the digits.
PHONE_PATTERN = r"^\+ ?[1-9](?:[ .()-]{0,2}[0-9]){7,14}$"
MAX_OTHER_MATCHES = 10


def enroll_member(session: Session, program: Program, data: dict, ip: str | None = None) -> Member:
    """`ip`: the address the customer enrolled from, for the referral velocity cap (None when unknown)."""
    default_locale = program.locales[0] if program.locales else FALLBACK_LOCALE
    locale = (data.get("locale") or default_locale).split("-")[0].lower()
    if locale not in LOCALES:
        raise InvalidInput("locale", f"Supported locales are {', '.join(LOCALES)}.")
    if data.get("external_id") and session.scalar(select(Member.id).where(
            Member.program_id == program.id, Member.external_id == data["external_id"])):
        raise _taken(data["external_id"])
    referrer = _referrer(session, program, data.get("referral_code"))
    if referrer is not None:  # before the insert: its foreign key share-locks the referrer, and two enrolments
        referrer = lock_member(session, referrer)  # upgrading those locks would deadlock each other
    member = Member(
        program=program, program_id=program.id, merchant_id=program.merchant_id,
        name=data["name"], email=normal_email(data.get("email")), phone=data.get("phone"),
        external_id=data.get("external_id"), locale=locale,
        referral_code=_referral_code(), referred_by_id=referrer.id if referrer else None,
        serial_number=secrets.token_hex(16), auth_token=secrets.token_urlsafe(24),
        barcode_token=_barcode_token(), download_token=_card_link_token(),
        points_balance=0, held_points=0, lifetime_points=0, pending_points=0, next_expiry_points=0,
        qualifying_total=0, pass_version=0,
    )
    start_tier(member, utcnow())  # before `add`: reading the (empty) tier of a pending member would flush it early
    session.add(member)
    try:
        session.flush()
    except IntegrityError:  # an enrolment with this external_id committed after the check above
        if not member.external_id:
            raise
        raise _taken(member.external_id) from None
    card_changed(session, member, notify=False)
    emit(session, **member_event("member.enrolled", member, name=member.name, email=member.email, locale=member.locale))
    if referrer is not None:
        record_referral(session, member, referrer, ip, utcnow())
    return member


def rotate_card_link(session: Session, member_id: int) -> Member:
    """A leaked card link or checkout code stops working: new `download_token` (the card link) and
    `barcode_token` (QR/NFC), and the card updates. The serial and the Apple authentication token stay, so the
    card in the wallet keeps its registrations and simply shows the new code."""
    member = session.get(Member, member_id, with_for_update={"of": Member})
    if member is None:
        raise NotFound(f"No member {member_id}.")
    member.download_token, member.barcode_token = _card_link_token(), _barcode_token()
    card_changed(session, member)
    return member


def _card_link_token() -> str:
    return secrets.token_urlsafe(24)


def _barcode_token() -> str:
    return secrets.token_urlsafe(18)


def apply_personalization(session: Session, member: Member, info: dict) -> None:
    """The customer signed up in Wallet: keep what they chose to share and re-issue the card without the
    sign-up sheet."""
    name = info.get("fullName") or " ".join(filter(None, (info.get("givenName"), info.get("familyName"))))
    member.name = name or member.name
    member.email = normal_email(info.get("emailAddress")) or member.email
    member.personalized_at = utcnow()
    card_changed(session, member)


def next_goals(member: Member) -> tuple[Goal | None, Goal | None]:
    """What the member works towards, as the API and the card show it: the next tier (on what they earned in the
    tier window) and the cheapest reward they cannot afford yet (on available points)."""
    upcoming_tier = next_tier(member.program, member.qualifying_total or 0, member.tier)
    upcoming_reward = next_reward(member.program, member.available_points)
    return (Goal(upcoming_tier[0].name, upcoming_tier[1]) if upcoming_tier else None,
            Goal(upcoming_reward.name, upcoming_reward.points_cost - member.available_points)
            if upcoming_reward else None)


def get_member(session: Session, merchant_id: int, member_id: int) -> Member:
    """One statement: the member, with their program's configuration from the process's cache."""
    member = _member_with_config(session, Member.id == member_id)
    if member is None or member.merchant_id != merchant_id or member.deleted_at is not None:
        raise NotFound(f"No member {member_id}.")
    return without_expired_holds(session, member)


def find_by_barcode(session: Session, merchant_id: int, barcode: str) -> Member:
    member = _member_with_config(session, Member.barcode_token == barcode.strip())
    if member is None or member.merchant_id != merchant_id:
        raise NotFound("No member carries this code.")
    return without_expired_holds(session, member)


def _member_with_config(session: Session, *where) -> Member | None:
    row = session.execute(select_member().where(*where)).first()
    return use_config(session, row[0], row[1]) if row else None


def without_expired_holds(session: Session, member: Member) -> Member:
    """The member as a reader should see them now: a hold past its expiry no longer counts in `held_points`,
    even before the sweep (or the next write, which locks the member) records its release. Only this object
    changes, as if loaded so; nothing is written. One query, and only for a member with held points."""
    if member.held_points:
        live = session.scalar(select(func.coalesce(func.sum(Hold.points), 0)).where(
            Hold.member_id == member.id, Hold.status == HELD, Hold.expires_at > utcnow()))
        set_committed_value(member, "held_points", int(live))
    return member


def find_by_contact(session: Session, merchant_id: int, *, phone: str | None = None,
                    email: str | None = None) -> tuple[Member, list[Member]]:
    """The merchant's member with this phone (E.164) or email, and the others sharing it: a customer enrolled in
    two programs, or a family sharing a number. The most recently enrolled comes first: at a counter it is the
    likeliest; the till may offer the others."""
    if phone is not None:
        where = Member.phone == phone
    else:  # emails are stored lowercased since issue 10; an older row may keep the case it was given in
        where = Member.email.in_({email.strip(), normal_email(email)})
    found = list(session.scalars(select(Member).where(Member.merchant_id == merchant_id, where)
                                 .options(_WITH_TIERS).order_by(Member.id.desc()).limit(MAX_OTHER_MATCHES + 1))
                 .unique())
    if not found:
        raise NotFound("No member of yours has this phone number." if phone is not None else
                       "No member of yours has this email address.")
    return without_expired_holds(session, found[0]), found[1:]


def normal_email(email: str | None) -> str | None:
    """Emails compare without case at the counter (nobody types the case a customer once used)."""
    return email.strip().lower() if email else email


def find_by_download_token(session: Session, token: str) -> Member | None:
    return session.scalar(select(Member).where(Member.download_token == token))


def _referrer(session: Session, program: Program, code: str | None) -> Member | None:
    if not code:
        return None
    referrer = session.scalar(select(Member).where(Member.referral_code == code.strip().upper(),
                                                   Member.program_id == program.id))
    if referrer is None:
        raise InvalidInput("referral_code", "No member of this program has that referral code.")
    return referrer


def _referral_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


def _taken(external_id: str) -> Conflict:
    return Conflict(f"A member with external_id {external_id!r} already exists in this program.")


def new_member_tokens() -> dict[str, str]:
    """The random identifiers a new member gets (bulk import makes members without `enroll_member`)."""
    return {"referral_code": _referral_code(), "serial_number": secrets.token_hex(16),
            "auth_token": secrets.token_urlsafe(24), "barcode_token": _barcode_token(),
            "download_token": _card_link_token()}
