"""Rewards: which a member can take now and which they are working towards; editing and retiring them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.domain.errors import NotFound
from app.domain.passupdates import design_changed
from app.domain.programs import lock_program
from app.models import Program, Reward, utcnow


def next_reward(program: Program, available: int) -> Reward | None:
    """The cheapest active reward the member cannot afford yet."""
    ahead = [r for r in program.rewards if r.active and r.points_cost > available]
    return min(ahead, key=lambda r: r.points_cost) if ahead else None


def redeemable_rewards(program: Program, available: int) -> list[Reward]:
    return [r for r in program.rewards if r.active and r.points_cost <= available]


def get_merchant_reward(session: Session, merchant_id: int, reward_id: int) -> Reward:
    """The merchant's reward, unless retired: another merchant's, or a retired one, is not found."""
    reward = session.get(Reward, reward_id)
    if reward is None or reward.retired_at is not None or \
            session.get(Program, reward.program_id).merchant_id != merchant_id:
        raise NotFound(f"No reward {reward_id}.")
    return reward


def update_reward(session: Session, reward: Reward, data: dict) -> Reward:
    """Rename, reprice, or switch a reward off and on (`active`); the program's cards show the change."""
    program = lock_program(session, session.get(Program, reward.program_id))
    for name in ("name", "points_cost", "active"):
        if data.get(name) is not None:
            setattr(reward, name, data[name])
    design_changed(session, program)  # cards show the next reward to aim for
    session.flush()
    return reward


def retire_reward(session: Session, reward: Reward) -> None:
    """Never redeemable or shown again, and kept: the ledger entries that redeemed it still name it."""
    program = lock_program(session, session.get(Program, reward.program_id))
    reward.active, reward.retired_at = False, utcnow()
    design_changed(session, program)
    session.flush()


def active_rewards(program: Program) -> list[Reward]:
    """Every reward the till can offer, cheapest first (the checkout page greys those the member cannot afford)."""
    return sorted((r for r in program.rewards if r.active), key=lambda r: (r.points_cost, r.id))
