"""Which rewards a member can take now, and which one they are working towards."""

from __future__ import annotations

from app.models import Program, Reward


def next_reward(program: Program, available: int) -> Reward | None:
    """The cheapest active reward the member cannot afford yet."""
    ahead = [r for r in program.rewards if r.active and r.points_cost > available]
    return min(ahead, key=lambda r: r.points_cost) if ahead else None


def redeemable_rewards(program: Program, available: int) -> list[Reward]:
    return [r for r in program.rewards if r.active and r.points_cost <= available]


def active_rewards(program: Program) -> list[Reward]:
    """Every reward the till can offer, cheapest first (the checkout page greys those the member cannot afford)."""
    return sorted((r for r in program.rewards if r.active), key=lambda r: (r.points_cost, r.id))
