"""Editing and retiring rewards (admin keys). A retired reward is kept for the ledger entries that name it."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.schemas import RewardOut, RewardPatch
from app.auth import ADMIN, auth, current_caller
from app.domain import rewards
from app.services import db_session

bp = APIBlueprint("rewards", __name__, url_prefix="/api/v1", tag="Rewards")


@bp.patch("/rewards/<int:reward_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(RewardPatch, arg_name="data")
@bp.output(RewardOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def update_reward(reward_id, data):
    """Rename or reprice a reward, or switch it off (`active: false`) and on; the program's cards update."""
    session = db_session()
    return rewards.update_reward(session, rewards.get_merchant_reward(session, current_caller().merchant_id,
                                                                      reward_id), data)


@bp.delete("/rewards/<int:reward_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.output({}, status_code=204)
@bp.doc(responses=problems(400, 401, 403, 404))
def retire_reward(reward_id):
    """Retire: never redeemable or shown again, kept for history; then not found."""
    session = db_session()
    rewards.retire_reward(session, rewards.get_merchant_reward(session, current_caller().merchant_id, reward_id))
    return ""
