"""Members and their points: enrol, read, earn, redeem, reverse, statement, the signed pass."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response

from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.api.present import member_json, membership_json, transaction_json
from app.api.schemas import (
    AdjustIn,
    BonusEventIn,
    EarnIn,
    MemberIn,
    MemberOut,
    MembershipIn,
    MembershipList,
    MembershipOut,
    PageQuery,
    RedeemIn,
    ReverseIn,
    TierOverrideIn,
    TransactionPage,
    TransactionResult,
)
from app.auth import ADMIN, POS, auth, current_caller
from app.cards import pkpass_response
from app.domain import (
    bonuses,
    challenges,
    earnrules,
    ledger,
    members,
    memberships,
    offers,
    programs,
    purchases,
    referrals,
    stamps,
    surveys,
    tiers,
)
from app.domain.passupdates import card_changed
from app.models import utcnow
from app.services import db_session

bp = APIBlueprint("members", __name__, url_prefix="/api/v1", tag="Members")


@bp.post("/programs/<int:program_id>/members")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(MemberIn, arg_name="data")
@bp.output(MemberOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 409, 413, 422))
def enroll(program_id, data):
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    return member_json(members.enroll_member(session, program, data, ip=data.get("client_ip")))


@bp.get("/members/<int:member_id>")
@bp.auth_required(auth, roles=POS)
@bp.output(MemberOut)
@bp.doc(responses=problems(401, 404))
def get_member(member_id):
    return member_json(members.get_member(db_session(), current_caller().merchant_id, member_id))


@bp.post("/members/<int:member_id>/earn")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.input(EarnIn, arg_name="data")
@bp.output(TransactionResult, status_code=201)
@bp.doc(responses=problems(400, 401, 404, 413, 422))
def earn(member_id, data):
    """Earn by `amount` or line `items` (converted by the program's earn rules, listed in `rules`) or by
    `points`. Send an Idempotency-Key."""
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    by = current_caller().actor
    if "stamps" in data:
        entry = stamps.add_stamps(session, member, data["stamps"], data.get("reference"), by=by)
        after_purchase(session, member, entry)  # a stamp is a visit: referrals, surveys, challenges
        return transaction_json(entry, member)
    if "points" in data:
        entry = ledger.earn_points(session, member, data["points"], reference=data.get("reference"),
                                   reason=data.get("reason"), rule="points given", by=by)
        after_purchase(session, member, entry)
        return transaction_json(entry, member, rules=[{"rule": "points", "detail": "points given", "multiplier": None}])
    earned = earnrules.points_for_purchase(member.program, member.tier, utcnow(), amount=data.get("amount"),
                                           items=data.get("items"))
    entry = ledger.earn_points(session, member, earned.points, amount=earned.amount, reference=data.get("reference"),
                               reason=data.get("reason"), rule=earned.summary, by=by)
    if data.get("items"):
        purchases.record_items(session, entry, data["items"])
    after_purchase(session, member, entry, data.get("items"))
    offers.after_purchase(session, member, entry.created_at)
    return transaction_json(entry, member, rules=earned.rules)


def after_purchase(session, member, entry, items: list[dict] | None = None) -> None:
    """What a purchase sets off besides its points: a referral's reward, a survey offered after N purchases, the
    progress of running challenges."""
    now = utcnow()
    referrals.after_purchase(session, member, entry, now)
    surveys.after_purchase(session, member, entry, now)
    challenges.record_purchase(session, member, entry, items, entry.created_at)


@bp.post("/members/<int:member_id>/redeem")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.input(RedeemIn, arg_name="data")
@bp.output(TransactionResult, status_code=201)
@bp.doc(responses=problems(400, 401, 404, 409, 413, 422))
def redeem(member_id, data):
    """Spend `points` or a reward's cost; 409 and nothing written when the member has too few."""
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    if "voucher_id" in data:
        entry = stamps.redeem_voucher(session, member, data["voucher_id"], data.get("reference"),
                                      by=current_caller().actor)
        return transaction_json(entry, member)
    reward = programs.get_reward(session, member.program_id, data["reward_id"]) if "reward_id" in data else None
    entry = ledger.redeem_points(session, member, data.get("points"), reward=reward,
                                 reference=data.get("reference"), reason=data.get("reason"), by=current_caller().actor)
    return transaction_json(entry, member)


@bp.post("/members/<int:member_id>/adjust")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(AdjustIn, arg_name="data")
@bp.output(TransactionResult, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 409, 413, 422))
def adjust(member_id, data):
    """A manual correction (goodwill credit, a mistake at the till), with a reason the member can read."""
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    entry = ledger.adjust_points(session, member, data["points"], reason=data["reason"],
                                 reference=data.get("reference"), by=current_caller().actor)
    return transaction_json(entry, member)


@bp.post("/transactions/<int:transaction_id>/reverse")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.input(ReverseIn, arg_name="data")
@bp.output(TransactionResult, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 409, 413, 422))
def reverse(transaction_id, data):
    """Refund: reverse all or `points` of a transaction. Points already spent come back as `shortfall`. A till
    (pos) key may undo only entries it made itself in the last 60 seconds (403 otherwise: use an admin key)."""
    session = db_session()
    entry, shortfall = ledger.reverse_entry(session, current_caller().merchant_id, transaction_id,
                                            data.get("points"), data.get("reference"), by=current_caller().actor)
    referrals.after_refund(session, entry.reverses_id, utcnow())
    challenges.after_reversal(session, entry, utcnow())
    return transaction_json(entry, members.get_member(session, entry.merchant_id, entry.member_id), shortfall)


@bp.post("/members/<int:member_id>/events")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.input(BonusEventIn, arg_name="data")
@bp.output(TransactionResult, status_code=201)
@bp.doc(responses=problems(400, 401, 404, 409, 413, 422))
def bonus_event(member_id, data):
    """A bonus action (review, share, birthday, feedback): the program's bonus points as a `bonus` entry; 409
    when the member reached the program's cap for it, 422 when the program gives none."""
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    entry = bonuses.award_bonus(session, member, data["kind"], utcnow(), data.get("reference"),
                                 by=current_caller().actor)
    return transaction_json(entry, member)


@bp.put("/members/<int:member_id>/tier-override")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(TierOverrideIn, arg_name="data")
@bp.output(MemberOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def tier_override(member_id, data):
    """Give the member a tier by hand until `until` (then their earned tier again); `tier_id` null ends it."""
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    tiers.set_override(session, member, data["tier_id"], data.get("until"), utcnow())
    card_changed(session, member)
    session.flush()
    return member_json(member)


@bp.post("/members/<int:member_id>/memberships")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(MembershipIn, arg_name="data")
@bp.output(MembershipOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def record_membership(member_id, data):
    """A paid membership period (start, end, amount paid) granting a tier while it runs; a renewal reminder
    (membership.renewal_due) fires `remind_days` before the end, and the member returns to their earned tier
    when it lapses."""
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    period = memberships.record_membership(
        session, member, tier_id=data["tier_id"], starts_at=data.get("starts_at"),
        ends_at=data["ends_at"], amount=data["amount"], currency=data.get("currency"), now=utcnow(),
        remind_days=data["remind_days"])
    return membership_json(period, member)


@bp.get("/members/<int:member_id>/memberships")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(MembershipList)
@bp.doc(responses=problems(401, 403, 404))
def list_memberships(member_id):
    session = db_session()
    member = members.get_member(session, current_caller().merchant_id, member_id)
    return {"data": [membership_json(period, member) for period in memberships.periods_of(session, member.id)]}


@bp.get("/members/<int:member_id>/transactions")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(TransactionPage)
@bp.doc(responses=problems(401, 403, 404, 422))
def transactions(member_id, page):
    """The ledger, newest first; pass `next_before` back as `before` for the next page."""
    session = db_session()
    member = members.get_member(session, current_caller().merchant_id, member_id)
    entries = ledger.entries_for(session, member, page.get("before"), page["limit"] + 1)
    more = len(entries) > page["limit"]
    entries = entries[:page["limit"]]
    return {"data": entries, "next_before": entries[-1].id if more else None}


@bp.get("/members/<int:member_id>/pass.pkpass")
@bp.auth_required(auth, roles=ADMIN)
@bp.doc(responses={200: {"description": "The signed Apple Wallet pass",
                         "content": {"application/vnd.apple.pkpass": {}}}, **problems(401, 403, 404)})
def member_pass(member_id) -> Response:
    session = db_session()
    response = pkpass_response(session, members.get_member(session, current_caller().merchant_id, member_id))
    session.commit()
    return response
