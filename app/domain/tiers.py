"""Tiers qualify on lifetime points earned (net of reversals), never on the spendable balance."""

from __future__ import annotations

from app.models import Member, Program, Tier


def tier_for(program: Program, lifetime_points: int) -> Tier | None:
    """The highest tier whose threshold the member has reached."""
    reached = [t for t in program.tiers if t.threshold <= lifetime_points]
    return max(reached, key=lambda t: t.threshold) if reached else None


def next_tier(program: Program, lifetime_points: int) -> tuple[Tier, int] | None:
    """The next tier up and the points still to earn for it."""
    ahead = sorted((t for t in program.tiers if t.threshold > lifetime_points), key=lambda t: t.threshold)
    return (ahead[0], ahead[0].threshold - lifetime_points) if ahead else None


def retier(member: Member) -> bool:
    """Recompute the member's tier; True when it changed."""
    tier = tier_for(member.program, member.lifetime_points)
    new_id = tier.id if tier else None
    if new_id == member.tier_id:
        return False
    member.tier_id, member.tier = new_id, tier
    return True
