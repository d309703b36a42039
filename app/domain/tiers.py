"""Tiers qualify on lifetime points earned (net of reversals), never on the spendable balance.

A member's tier only goes up by itself: a rule change never downgrades anyone (downgrades are for tier reviews),
and only a reversed earn takes back what the points no longer reach."""

from __future__ import annotations

import uuid

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session, object_session

from app.domain.errors import InvalidInput
from app.domain.event_data import member_event
from app.domain.events import emit
from app.models import Member, Program, Tier


def tier_for(program: Program, lifetime_points: int) -> Tier | None:
    """The highest tier whose threshold the member has reached."""
    reached = [t for t in program.tiers if t.threshold <= lifetime_points]
    return max(reached, key=lambda t: t.threshold) if reached else None


def next_tier(program: Program, lifetime_points: int, held: Tier | None = None) -> tuple[Tier, int] | None:
    """The next tier above both the member's points and the tier they hold (which a rule change may have put
    above their points), and the points still to earn for it."""
    floor = max(lifetime_points, held.threshold if held else -1)
    ahead = sorted((t for t in program.tiers if t.threshold > floor), key=lambda t: t.threshold)
    return (ahead[0], ahead[0].threshold - lifetime_points) if ahead else None


def retier(member: Member, may_lower: bool = False) -> bool:
    """Move the member up to the tier their points reach; down only when `may_lower` (a reversed earn). True when
    the tier changed."""
    tier, held = tier_for(member.program, member.lifetime_points), member.tier
    upgrade = tier is not None and (held is None or tier.threshold > held.threshold)
    if tier is held or not (upgrade or may_lower):
        return False
    member.tier_id, member.tier = (tier.id if tier else None), tier
    _tier_changed(member, held)
    return True


def _tier_changed(member: Member, previous: Tier | None) -> None:
    """`tier.changed` for a member already in a session (enrolment sets the first tier: no change to tell)."""
    session = object_session(member)
    if session is not None and member.id is not None:
        upgrade = member.tier is not None and (previous is None or member.tier.threshold > previous.threshold)
        emit(session, **member_event("tier.changed", member, previous_tier=previous.name if previous else None,
                                     upgrade=upgrade))


def replace_tiers(session: Session, program: Program, items: list[dict]) -> None:
    """The program's tiers become exactly `items`: one with an `id` changes that tier in place, one without is
    new, a tier not listed is removed and its members move to the tier they qualify for. The caller holds the
    program's row lock, so concurrent replacements never mix."""
    current = {tier.id: tier for tier in program.tiers}
    _check_items(items, current)
    kept = [current[item["id"]] for item in items if "id" in item]
    removed = [tier.id for tier in program.tiers if tier not in kept]
    if removed:  # before the rows go: members.tier_id points at them
        session.execute(update(Member).where(or_(Member.tier_id.in_(removed), Member.tier_override_id.in_(removed)))
                        .values(tier_id=case((Member.tier_id.in_(removed), None), else_=Member.tier_id),
                                tier_override_id=case((Member.tier_override_id.in_(removed), None),
                                                      else_=Member.tier_override_id))
                        .execution_options(synchronize_session=False))
    renamed = {item["id"] for item in items if "id" in item and current[item["id"]].name != item["name"]}
    for tier in kept:  # (program_id, name) is unique row by row: free the names that change first, so they can swap
        if tier.id in renamed:
            tier.name = uuid.uuid4().hex
    program.tiers = kept
    session.flush()
    for item in items:
        tier = current[item["id"]] if "id" in item else Tier()
        tier.name, tier.threshold = item["name"], item["threshold"]
        if "id" not in item:
            program.tiers.append(tier)
    session.flush()
    session.expire(program, ["tiers"])  # read back in threshold order
    upgrade_members(session, program)


def upgrade_members(session: Session, program: Program) -> None:
    """After a rule change, everyone whose points reach a tier above the one they hold (or who holds none) moves
    up now. One UPDATE per tier, highest first, so a big program is not loaded member by member. Members loaded
    in this session are not refreshed."""
    for tier in sorted(program.tiers, key=lambda t: t.threshold, reverse=True):
        lower = select(Tier.id).where(Tier.program_id == program.id, Tier.threshold < tier.threshold)
        session.execute(update(Member)
                        .where(Member.program_id == program.id, Member.lifetime_points >= tier.threshold,
                               or_(Member.tier_id.is_(None), Member.tier_id.in_(lower)))
                        .values(tier_id=tier.id).execution_options(synchronize_session=False))


def _check_items(items: list[dict], current: dict[int, Tier]) -> None:
    names = [item["name"] for item in items]
    if len(set(names)) != len(names):
        raise InvalidInput("tiers", "Tier names must be unique.")
    seen: set[int] = set()
    for n, item in enumerate(items):
        if "id" in item and (item["id"] not in current or item["id"] in seen):
            raise InvalidInput(f"tiers.{n}.id", f"No tier {item['id']} in this program (or it is listed twice).")
        seen.add(item.get("id", 0))
