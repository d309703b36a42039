"""The till: scan the card, see the member and what they can redeem."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.openapi import problems
from app.api.present import member_json
from app.api.schemas import LookupIn, LookupOut
from app.auth import POS, auth, current_caller
from app.domain import members
from app.domain.rewards import redeemable_rewards
from app.services import db_session

bp = APIBlueprint("checkout", __name__, url_prefix="/api/v1/checkout", tag="Checkout")


@bp.post("/lookup")
@bp.auth_required(auth, roles=POS)
@bp.input(LookupIn, arg_name="data")
@bp.output(LookupOut)
@bp.doc(responses=problems(400, 401, 404, 413, 422))
def lookup(data):
    """The value printed in the card's barcode (or read from its NFC payload) -> the member."""
    member = members.find_by_barcode(db_session(), current_caller().merchant_id, data["barcode"])
    body = member_json(member)
    body["redeemable_rewards"] = redeemable_rewards(member.program, member.available_points)
    return body
