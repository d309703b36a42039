"""The till: scan the card, see the member and what they can redeem."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.present import member_json
from app.api.schemas import CounterEnrolIn, LookupIn, LookupOut, MemberOut
from app.auth import POS, auth, current_caller
from app.domain import members, programs
from app.domain.rewards import active_rewards, redeemable_rewards
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
    body["rewards"] = active_rewards(member.program)
    return body


@bp.post("/members")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.input(CounterEnrolIn, arg_name="data")
@bp.output(MemberOut, status_code=201)
@bp.doc(responses=problems(400, 401, 404, 409, 413, 422))
def enrol_at_counter(data):
    """Enrol a customer at the till (a POS key may): the answer's `apple_pass_url` is the card link to show as a
    QR, so they add the card to their wallet on the spot."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, data.pop("program_id"))
    return member_json(members.enroll_member(session, program, data))
