"""Paid memberships (VIP): the merchant records a period (start, end, amount paid) that grants a tier. While it
runs the member shows the higher of that tier and the one they earned; a renewal reminder (`membership.renewal_due`)
fires before the end; when it lapses they return to their earned tier. A period starting later takes effect when
the sweep reaches its start."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import InvalidInput
from app.domain.events import emit
from app.domain.passupdates import card_changed
from app.domain.tiers import show_tier, tier_by_id
from app.models import Member, MembershipPeriod

DEFAULT_REMIND_DAYS = 7


def record_membership(session: Session, member: Member, *, tier_id: int, ends_at: datetime, amount: Decimal,
                      now: datetime, starts_at: datetime | None = None, currency: str | None = None,
                      remind_days: int = DEFAULT_REMIND_DAYS) -> MembershipPeriod:
    """Record a paid period for a member already locked by the caller; its tier applies at once when it has
    started."""
    if tier_by_id(member.program, tier_id) is None:
        raise InvalidInput("tier_id", f"No tier {tier_id} in this program.")
    starts_at = starts_at or now
    if ends_at <= starts_at or ends_at <= now:
        raise InvalidInput("ends_at", "Must be after starts_at and in the future.")
    period = MembershipPeriod(member_id=member.id, merchant_id=member.merchant_id, tier_id=tier_id,
                              starts_at=starts_at, ends_at=ends_at, amount=amount,
                              currency=currency or member.program.currency,
                              remind_at=max(starts_at, ends_at - timedelta(days=remind_days)), created_at=now)
    session.add(period)
    session.flush()
    apply_memberships(session, member, now)
    return period


def periods_of(session: Session, member_id: int) -> list[MembershipPeriod]:
    return list(session.scalars(select(MembershipPeriod).where(MembershipPeriod.member_id == member_id)
                                .order_by(MembershipPeriod.starts_at.desc(), MembershipPeriod.id.desc())))


def apply_memberships(session: Session, member: Member, now: datetime) -> bool:
    """Put the best period running at `now` (highest tier, then latest end) on the member, or none; True when
    the tier shown changed (the card is updated then)."""
    running = session.scalars(select(MembershipPeriod).where(
        MembershipPeriod.member_id == member.id, MembershipPeriod.starts_at <= now, MembershipPeriod.ends_at > now,
        MembershipPeriod.tier_id.is_not(None))).all()
    for period in running:
        period.applied_at = period.applied_at or now
    best = max(running, key=lambda p: (tier_by_id(member.program, p.tier_id).threshold, p.ends_at), default=None)
    member.membership_tier_id = best.tier_id if best else None
    member.membership_ends_at = best.ends_at if best else None
    changed = show_tier(session, member, now)
    if changed:
        card_changed(session, member)
    return changed


def members_with_membership_changes(session: Session, as_of: datetime, limit: int) -> list[int]:
    """Members whose membership lapsed, or whose recorded period has started, by `as_of`."""
    lapsed = select(Member.id).where(Member.membership_ends_at <= as_of)
    started = select(MembershipPeriod.member_id).where(MembershipPeriod.applied_at.is_(None),
                                                       MembershipPeriod.starts_at <= as_of,
                                                       MembershipPeriod.ends_at > as_of)
    return sorted(set(session.scalars(lapsed.limit(limit))) | set(session.scalars(started.limit(limit))))[:limit]


def send_renewal_reminders(session: Session, as_of: datetime, limit: int) -> int:
    """`membership.renewal_due` once per period, from its reminder date until it ends."""
    due = session.scalars(select(MembershipPeriod).where(
        MembershipPeriod.remind_at <= as_of, MembershipPeriod.ends_at > as_of, MembershipPeriod.reminded_at.is_(None))
        .order_by(MembershipPeriod.id).limit(limit).with_for_update(skip_locked=True)).all()
    for period in due:
        period.reminded_at = as_of
        emit(session, merchant_id=period.merchant_id, type="membership.renewal_due", member_id=period.member_id,
             data={"member_id": period.member_id, "membership_id": period.id, "ends_at": period.ends_at.isoformat()})
    session.flush()
    return len(due)
