"""Segments, campaigns, surprises and member tags (admin keys). Sending happens in workers, a batch at a time
(app/domain/campaigns.py): a request only stores the campaign and queues its first batch."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.campaign_schemas import (
    CampaignIn,
    CampaignList,
    CampaignOut,
    CampaignResults,
    CountQuery,
    RedemptionIn,
    RedemptionOut,
    ScheduleIn,
    SegmentCount,
    SegmentIn,
    SegmentList,
    SegmentOut,
    SegmentPatch,
    SurpriseIn,
    SurpriseOut,
    TagsIn,
    TagsOut,
)
from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.auth import ADMIN, POS, auth, current_caller
from app.domain import campaigns, ledger, programs, segments, surprises, tags
from app.models import Campaign, Segment, Surprise, utcnow
from app.services import db_session

bp = APIBlueprint("campaigns", __name__, url_prefix="/api/v1", tag="Campaigns")


def _program(program_id: int):
    return programs.get_program(db_session(), current_caller().merchant_id, program_id)


def segment_json(segment: Segment, count: int | None = None) -> dict:
    body = {"id": segment.id, "program_id": segment.program_id, "name": segment.name, "rules": segment.rules,
            "created_at": segment.created_at, "updated_at": segment.updated_at}
    return body if count is None else {**body, "count": count}


def campaign_json(session, campaign: Campaign) -> dict:
    message = {"title": campaign.title, "body": campaign.body} if campaign.title or campaign.body else None
    offer = {"text": campaign.offer_text, "ends_at": campaign.offer_ends_at.isoformat()} \
        if campaign.offer_text else None
    cap = {"max": campaign.cap_count, "days": campaign.cap_days} if campaign.cap_count else None
    return {"id": campaign.id, "program_id": campaign.program_id, "segment_id": campaign.segment_id,
            "name": campaign.name, "status": campaign.status, "message": message, "offer": offer,
            "frequency_cap": cap, "send_at": campaign.send_at, "started_at": campaign.started_at,
            "finished_at": campaign.finished_at, "cancelled_at": campaign.cancelled_at,
            "results": campaigns.results(session, campaign), "created_at": campaign.created_at}


def surprise_json(surprise: Surprise) -> dict:
    return {name: getattr(surprise, name) for name in (
        "id", "program_id", "segment_id", "seed", "sample_size", "points", "reward_id", "eligible_count",
        "eligible_digest", "member_ids", "created_at")}


# ---- segments ---------------------------------------------------------------------------------------------------

@bp.post("/programs/<int:program_id>/segments")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(SegmentIn, arg_name="data")
@bp.output(SegmentOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def create_segment(program_id, data):
    """A stored rule over the program's members (tier, balance, purchases, categories, tags, wallet status...)."""
    return segment_json(segments.create_segment(db_session(), _program(program_id), data["name"], data["rules"]))


@bp.get("/programs/<int:program_id>/segments")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(CountQuery, location="query", arg_name="query")
@bp.output(SegmentList)
@bp.doc(responses=problems(401, 403, 404, 422))
def list_segments(program_id, query):
    session, now = db_session(), utcnow()
    found = segments.program_segments(session, _program(program_id))
    return {"data": [segment_json(segment, segments.count_members(session, segment, now) if query["count"] else None)
                     for segment in found]}


@bp.get("/segments/<int:segment_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(CountQuery, location="query", arg_name="query")
@bp.output(SegmentOut)
@bp.doc(responses=problems(401, 403, 404, 422))
def get_segment(segment_id, query):
    """`?count=true` adds how many members match now."""
    session = db_session()
    segment = segments.get_segment(session, current_caller().merchant_id, segment_id)
    return segment_json(segment, segments.count_members(session, segment, utcnow()) if query["count"] else None)


@bp.get("/segments/<int:segment_id>/count")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(SegmentCount)
@bp.doc(responses=problems(401, 403, 404))
def count_segment(segment_id):
    """How many members match now: one SQL query, whatever the program's size."""
    session, now = db_session(), utcnow()
    segment = segments.get_segment(session, current_caller().merchant_id, segment_id)
    return {"segment_id": segment.id, "count": segments.count_members(session, segment, now), "as_of": now}


@bp.patch("/segments/<int:segment_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(SegmentPatch, arg_name="data")
@bp.output(SegmentOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def update_segment(segment_id, data):
    session = db_session()
    return segment_json(segments.update_segment(
        session, segments.get_segment(session, current_caller().merchant_id, segment_id), data))


@bp.delete("/segments/<int:segment_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.output({}, status_code=204)
@bp.doc(responses=problems(400, 401, 403, 404))
def delete_segment(segment_id):
    """Gone from lists and unusable; kept for the campaigns and surprises that name it."""
    session = db_session()
    segments.delete_segment(session, segments.get_segment(session, current_caller().merchant_id, segment_id))
    return ""


# ---- campaigns --------------------------------------------------------------------------------------------------

@bp.post("/programs/<int:program_id>/campaigns")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(CampaignIn, arg_name="data")
@bp.output(CampaignOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def create_campaign(program_id, data):
    """A message and/or a time-limited offer to a segment, sent now (no `send_at`) or at `send_at`, in batches
    by the workers; `campaign.delivered` is emitted when the last batch is done."""
    session = db_session()
    return campaign_json(session, campaigns.create_campaign(session, _program(program_id), data, utcnow()))


@bp.get("/programs/<int:program_id>/campaigns")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(CampaignList)
@bp.doc(responses=problems(401, 403, 404))
def list_campaigns(program_id):
    session = db_session()
    return {"data": [campaign_json(session, campaign)
                     for campaign in campaigns.program_campaigns(session, _program(program_id))]}


@bp.get("/campaigns/<int:campaign_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(CampaignOut)
@bp.doc(responses=problems(401, 403, 404))
def get_campaign(campaign_id):
    session = db_session()
    return campaign_json(session, campaigns.get_campaign(session, current_caller().merchant_id, campaign_id))


@bp.get("/campaigns/<int:campaign_id>/results")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(CampaignResults)
@bp.doc(responses=problems(401, 403, 404))
def campaign_results(campaign_id):
    """targeted, delivered, capped, card_updated, redeemed."""
    session = db_session()
    return campaigns.results(session, campaigns.get_campaign(session, current_caller().merchant_id, campaign_id))


@bp.post("/campaigns/<int:campaign_id>/schedule")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(ScheduleIn, arg_name="data")
@bp.output(CampaignOut)
@bp.doc(responses=problems(400, 401, 403, 404, 409, 413, 422))
def schedule_campaign(campaign_id, data):
    """Move a scheduled campaign to another time (a past one: now)."""
    session = db_session()
    campaign = campaigns.get_campaign(session, current_caller().merchant_id, campaign_id, lock=True)
    return campaign_json(session, campaigns.reschedule(session, campaign, data["send_at"], utcnow()))


@bp.post("/campaigns/<int:campaign_id>/cancel")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.output(CampaignOut)
@bp.doc(responses=problems(400, 401, 403, 404, 409))
def cancel_campaign(campaign_id):
    """Stop a scheduled or sending campaign (between two batches); cards it reached lose its lines."""
    session = db_session()
    campaign = campaigns.get_campaign(session, current_caller().merchant_id, campaign_id, lock=True)
    return campaign_json(session, campaigns.cancel_campaign(session, campaign, utcnow()))


@bp.post("/campaigns/<int:campaign_id>/redemptions")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.input(RedemptionIn, arg_name="data")
@bp.output(RedemptionOut, status_code=201)
@bp.doc(responses=problems(400, 401, 404, 409, 413, 422))
def redeem_offer(campaign_id, data):
    """The till used a member's campaign offer (admin or pos key): counted once in the campaign's `redeemed`;
    409 when the member did not receive it or the offer ended or was cancelled."""
    session = db_session()
    campaign = campaigns.get_campaign(session, current_caller().merchant_id, campaign_id)
    recipient = campaigns.redeem_offer(session, campaign, data["member_id"], utcnow())
    return {"campaign_id": campaign.id, "member_id": recipient.member_id, "redeemed_at": recipient.redeemed_at}


# ---- surprises and tags -----------------------------------------------------------------------------------------

@bp.post("/programs/<int:program_id>/surprises")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(SurpriseIn, arg_name="data")
@bp.output(SurpriseOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 409, 413, 422))
def give_surprise(program_id, data):
    """Points for a random sample of a segment, drawn reproducibly from `seed` (returned): the same seed over
    the same eligible members picks the same winners."""
    return surprise_json(surprises.give_surprise(db_session(), _program(program_id), data, utcnow()))


@bp.get("/surprises/<int:surprise_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(SurpriseOut)
@bp.doc(responses=problems(401, 403, 404))
def get_surprise(surprise_id):
    return surprise_json(surprises.get_surprise(db_session(), current_caller().merchant_id, surprise_id))


@bp.get("/members/<int:member_id>/tags")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(TagsOut)
@bp.doc(responses=problems(401, 403, 404))
def get_tags(member_id):
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    return {"member_id": member.id, "tags": tags.member_tags(session, member)}


@bp.put("/members/<int:member_id>/tags")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(TagsIn, arg_name="data")
@bp.output(TagsOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def set_tags(member_id, data):
    """Replace the member's tags (lowercased), which segments select on."""
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    return {"member_id": member.id, "tags": tags.set_tags(session, member, data["tags"])}
