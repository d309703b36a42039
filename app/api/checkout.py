"""The till: find the member (scan, tap, phone or email), see what they can redeem, and redeem in two phases
(hold, then capture or void)."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.present import hold_json, hold_summary, member_json
from app.api.schemas import CounterEnrolIn, HoldIn, HoldOut, LookupIn, LookupOut, MemberOut
from app.auth import POS, auth, current_caller
from app.domain import holds, ledger, members, programs
from app.domain.rewards import active_rewards, redeemable_rewards
from app.models import utcnow
from app.services import db_session

bp = APIBlueprint("checkout", __name__, url_prefix="/api/v1/checkout", tag="Checkout")


@bp.post("/lookup")
@bp.auth_required(auth, roles=POS)
@bp.input(LookupIn, arg_name="data")
@bp.output(LookupOut)
@bp.doc(responses=problems(400, 401, 404, 413, 422))
def lookup(data):
    """Exactly one of `barcode` (the value in the card's QR code, or read from its NFC payload), `phone` or
    `email` -> the member. Several members with that phone or email: the most recently enrolled, the others
    in `other_matches`."""
    session, merchant_id, others = db_session(), current_caller().merchant_id, []
    if "barcode" in data:
        member = members.find_by_barcode(session, merchant_id, data["barcode"])
    else:
        member, others = members.find_by_contact(session, merchant_id, phone=data.get("phone"),
                                                 email=data.get("email"))
    now = utcnow()
    body = member_json(member)
    body["redeemable_rewards"] = redeemable_rewards(member.program, member.available_points)
    body["active_holds"] = [hold_summary(hold, now) for hold in holds.live_holds(session, member, now)]
    body["other_matches"] = others
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
    return member_json(members.enroll_member(session, program, data, ip=data.get("client_ip")))


@bp.post("/holds")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.input(HoldIn, arg_name="data")
@bp.output(HoldOut, status_code=201)
@bp.doc(responses=problems(400, 401, 404, 409, 413, 422))
def place_hold(data):
    """Set `points` or a reward's cost aside for the member (by `barcode` or `member_id`) for `ttl_seconds`
    (default 300, at most 3600): they stop being available but stay in `points_balance` until captured.
    Too few available points: 409, nothing written. Send an Idempotency-Key."""
    session, caller, now = db_session(), current_caller(), utcnow()
    member_id = data.get("member_id") or members.find_by_barcode(session, caller.merchant_id, data["barcode"]).id
    member = ledger.get_member_for_update(session, caller.merchant_id, member_id)
    reward = programs.get_reward(session, member.program_id, data["reward_id"]) if "reward_id" in data else None
    hold = holds.place_hold(session, member, data.get("points"), reward=reward, ttl_seconds=data["ttl_seconds"],
                            reference=data.get("reference"), now=now, by=caller.actor)
    return hold_json(hold, member, now)


@bp.get("/holds/<int:hold_id>")
@bp.auth_required(auth, roles=POS)
@bp.output(HoldOut)
@bp.doc(responses=problems(401, 404))
def get_hold(hold_id):
    """A hold as it is now (one past its expiry reads `expired` at once)."""
    session, merchant_id = db_session(), current_caller().merchant_id
    hold = holds.get_hold(session, merchant_id, hold_id)
    member = members.get_member(session, merchant_id, hold.member_id)
    return hold_json(hold, member, utcnow(), holds.capture_entry(session, hold))


@bp.post("/holds/<int:hold_id>/capture")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.output(HoldOut)
@bp.doc(responses=problems(400, 401, 404, 409))
def capture_hold(hold_id):
    """Spend the held points, exactly once: a repeat answers the same and charges nothing. A voided or expired
    hold: 409."""
    session, caller, now = db_session(), current_caller(), utcnow()
    hold, member = holds.capture_hold(session, caller.merchant_id, hold_id, now=now, by=caller.actor)
    return hold_json(hold, member, now, holds.capture_entry(session, hold))


@bp.post("/holds/<int:hold_id>/void")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.output(HoldOut)
@bp.doc(responses=problems(400, 401, 404, 409))
def void_hold(hold_id):
    """Give the held points back (a repeat, or a hold that already expired, answers as it is). A captured hold:
    409, whose detail names the transaction to reverse instead."""
    session, caller, now = db_session(), current_caller(), utcnow()
    hold, member = holds.void_hold(session, caller.merchant_id, hold_id, now=now, by=caller.actor)
    return hold_json(hold, member, now)
