"""Campaigns: a message and/or a time-limited offer to a segment, now or at `send_at`, delivered through the card.

Sending streams: starting a campaign counts its segment and queues one CAMPAIGN_BATCH outbox row; the worker
handles BATCH_SIZE members (`send_batch`), commits, and that same commit queues the next row. No request and no
job holds the whole segment. Each member reached gets:
- a line on the card's back (`campaign_notices`, with change message "%@", so Wallet shows it as a
  notification) and a card change: an Apple push and a Google object update (`passupdates.card_changed`);
- `campaign.message` through `events.emit`: the merchant app's FCM tokens and a Google Wallet message (the
  Google worker keeps Google's 3 notifications per object per 24 h and the issuer's rate).

Apple pushes are paced: the next batch waits `pushes / APPLE_FETCHES_PER_SECOND` seconds, because every pushed
device then asks the web tier for its serials and its pass (docs/architecture.md, "Campaigns").

A batch is idempotent: it starts only from the campaign's `cursor` (a retry of a batch that already committed
finds the cursor moved and does nothing), and recipients are unique per campaign. Cancelling sets the status; the
next batch sees it and stops, and the cards that showed the campaign are re-issued without it (CAMPAIGN_CARDS
batches). An offer's end re-issues its recipients' cards the same way (`clear_ended_offers`, a scheduled job)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.domain import events, segments
from app.domain.calendar import last_day, program_zone
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.passupdates import UpdateTag, card_changed, card_holders, keep_update_tag, update_tag_columns
from app.domain.webhook_subscriptions import subscriptions
from app.models import Campaign, CampaignRecipient, FcmDevice, Member, OutboxEvent, Program, Segment, utcnow
from passes.storecard import CardNotice
from passes.strings import FALLBACK_LOCALE

CAMPAIGN_BATCH = "campaign_batch"  # outbox kind: send to the next BATCH_SIZE members
CAMPAIGN_CARDS = "campaign_cards"  # outbox kind: re-issue the next BATCH_SIZE recipients' cards
BATCH_SIZE = 500
APPLE_FETCHES_PER_SECOND = 50  # pushed devices per second the web tier is asked to serve (two requests each)
MAX_CAP_DAYS = 365
MESSAGE_SHOWN_FOR = timedelta(days=30)  # a campaign's message stays on the card's back this long
STATUSES = ("scheduled", "sending", "sent", "cancelled", "expired")

_OFFER_LABEL = {"en": "Offer until {day}", "ja": "{day}までの特典", "ko": "{day}까지 특별 혜택"}


def create_campaign(session: Session, program: Program, data: dict, now: datetime) -> Campaign:
    """Validated and stored; sent at once (its first batch queued) when `send_at` is absent or past."""
    segment = segments.program_segment(session, program, data["segment_id"])
    message, offer = data.get("message"), data.get("offer")
    if not message and not offer:
        raise InvalidInput("message", "Give a message, an offer, or both.")
    send_at = data.get("send_at") or now
    if offer and offer["ends_at"] <= max(send_at, now):
        raise InvalidInput("offer.ends_at", "The offer must end after the campaign is sent.")
    cap = data.get("frequency_cap")
    campaign = Campaign(
        merchant_id=program.merchant_id, program_id=program.id, segment_id=segment.id, name=data["name"],
        title=_texts(message, "title"), body=_texts(message, "body"),
        offer_text=_texts(offer, "text"), offer_ends_at=offer["ends_at"] if offer else None,
        cap_count=cap["max"] if cap else None, cap_days=cap["days"] if cap else None,
        send_at=send_at, status="scheduled", cursor=0, created_at=now)
    session.add(campaign)
    session.flush()
    if send_at <= now:
        start_campaign(session, campaign, now)
    return campaign


def _texts(part: dict | None, key: str) -> dict | None:
    """A text as {locale: text}; a plain string is every language's."""
    value = (part or {}).get(key)
    if value is None:
        return None
    return {FALLBACK_LOCALE: value} if isinstance(value, str) else dict(value)


def get_campaign(session: Session, merchant_id: int, campaign_id: int, lock: bool = False) -> Campaign:
    campaign = session.get(Campaign, campaign_id, with_for_update=lock or None, populate_existing=lock)
    if campaign is None or campaign.merchant_id != merchant_id:
        raise NotFound(f"No campaign {campaign_id}.")
    return campaign


def program_campaigns(session: Session, program: Program) -> list[Campaign]:
    return list(session.scalars(select(Campaign).where(Campaign.program_id == program.id)
                                .order_by(Campaign.id.desc())))


def reschedule(session: Session, campaign: Campaign, send_at: datetime, now: datetime) -> Campaign:
    if campaign.status != "scheduled":
        raise Conflict(f"Campaign {campaign.id} is {campaign.status}: only a scheduled one can be rescheduled.")
    if campaign.offer_ends_at is not None and campaign.offer_ends_at <= max(send_at, now):
        raise InvalidInput("send_at", "The campaign's offer would have ended by then.")
    campaign.send_at = send_at
    if send_at <= now:
        start_campaign(session, campaign, now)
    return campaign


def start_campaign(session: Session, campaign: Campaign, now: datetime) -> None:
    """Count the segment and queue the first batch; an offer that already ended is never sent (`expired`)."""
    if _offer_over(campaign, now):
        campaign.status, campaign.finished_at = "expired", now
        return
    campaign.status, campaign.started_at = "sending", now
    campaign.targeted = segments.count_members(session, session.get(Segment, campaign.segment_id), now)
    _queue(session, CAMPAIGN_BATCH, campaign, 0, now)


def start_due_campaigns(session: Session, as_of: datetime) -> int:
    """Scheduled job: start every scheduled campaign whose time came."""
    due = session.scalars(select(Campaign).where(Campaign.status == "scheduled", Campaign.send_at <= as_of)
                          .order_by(Campaign.id).with_for_update(skip_locked=True)).all()
    for campaign in due:
        start_campaign(session, campaign, as_of)
    return len(due)


def _offer_over(campaign: Campaign, now: datetime) -> bool:
    return campaign.offer_ends_at is not None and campaign.offer_ends_at <= now


def _queue(session: Session, kind: str, campaign: Campaign, after: int, available_at: datetime) -> None:
    session.add(OutboxEvent(kind=kind, program_id=campaign.program_id, available_at=available_at,
                            payload={"campaign_id": campaign.id, "after": after}))


def send_batch(session: Session, campaign_id: int, after: int, now: datetime, size: int | None = None) -> int:
    """Deliver to the next `size` members after member id `after`; queue the next batch or finish. Returns how
    many members this batch handled (0 for a cancelled campaign or a retried batch that already committed)."""
    campaign = session.get(Campaign, campaign_id, with_for_update=True, populate_existing=True)
    if campaign is None or campaign.status != "sending" or campaign.cursor != after:
        return 0
    if _offer_over(campaign, now):  # sending outlived the offer: the rest would get an offer already gone
        campaign.status, campaign.finished_at = "expired", now
        return 0
    size = size or BATCH_SIZE
    segment = session.get(Segment, campaign.segment_id)
    ids = list(session.scalars(segments.segment_query(session, segment, now)
                               .where(Member.id > after).order_by(Member.id).limit(size)))
    members = lock_members(session, ids)
    capped = _capped(session, campaign, ids, now)
    with_devices, with_google = card_holders(session, ids)
    rows, pushes = [], 0
    for member in members:
        delivered = member.id not in capped
        card = delivered and (member.id in with_devices or member.id in with_google)
        rows.append({"campaign_id": campaign.id, "member_id": member.id, "created_at": now, "card_updated": card,
                     "status": "delivered" if delivered else "capped"})
    new = _insert_recipients(session, rows)
    listening = _may_hear_messages(session, campaign, ids, with_google)
    with session.no_autoflush:  # the batch's rows are written together at commit, not one member at a time
        for member in members:
            if member.id in new and member.id not in capped:
                card_changed(session, member, holders=(member.id in with_devices, member.id in with_google))
                if (campaign.title or campaign.body) and (listening is None or member.id in listening):
                    _emit_message(session, campaign, member)
                pushes += member.apple_devices
    if ids:
        campaign.cursor = ids[-1]
    if len(ids) < size:
        _finish(session, campaign, now)
    else:
        _queue(session, CAMPAIGN_BATCH, campaign, campaign.cursor,
               now + timedelta(seconds=pushes / APPLE_FETCHES_PER_SECOND))
    return len(ids)


def lock_members(session: Session, ids: list[int]) -> list[Member]:
    """The members, row-locked in id order (so two batches never deadlock). On PostgreSQL the same statement
    returns each card change's update tag, as `ledger.lock_member` does: one statement for the whole batch."""
    postgres = session.get_bind().dialect.name == "postgresql"
    tag_columns = update_tag_columns() if postgres else ()
    rows = session.execute(select(Member, *tag_columns).where(Member.id.in_(ids)).order_by(Member.id)
                           .with_for_update(of=Member).execution_options(populate_existing=True)).all()
    for row in rows if postgres else ():
        keep_update_tag(session, Member, row[0].id, UpdateTag(*row[1:]))
    return [row[0] for row in rows]


def _capped(session: Session, campaign: Campaign, ids: list[int], now: datetime) -> set[int]:
    """Members of `ids` who already received `cap_count` campaigns in the last `cap_days` days."""
    if not campaign.cap_count or not ids:
        return set()
    since = now - timedelta(days=campaign.cap_days)
    rows = session.execute(
        select(CampaignRecipient.member_id).where(
            CampaignRecipient.member_id.in_(ids), CampaignRecipient.status == "delivered",
            CampaignRecipient.campaign_id != campaign.id, CampaignRecipient.created_at > since)
        .group_by(CampaignRecipient.member_id).having(func.count() >= campaign.cap_count)).scalars()
    return set(rows)


def _insert_recipients(session: Session, rows: list[dict]) -> set[int]:
    """INSERT ... ON CONFLICT DO NOTHING; the member ids that are new (a retry inserts none twice)."""
    if not rows:
        return set()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(CampaignRecipient).values(rows).on_conflict_do_nothing() \
        .returning(CampaignRecipient.member_id)
    return set(session.scalars(statement))


def _may_hear_messages(session: Session, campaign: Campaign, ids: list[int], with_google: set[int]) -> set[int] | None:
    """Which of the batch's members some channel may want `campaign.message` for, read for the whole batch so
    `events.emit` is not asked (two statements each) for the many members nobody listens for: members with an
    FCM token (fcm.py) or a Google object (googlewallet.py); None (everyone) when the merchant's webhooks take
    the type. A new channel for campaign.message must be added here too."""
    if subscriptions(session).wants(session, campaign.merchant_id, "campaign.message"):
        return None
    return with_google | set(session.scalars(select(FcmDevice.member_id).distinct()
                                             .where(FcmDevice.member_id.in_(ids))))


def _emit_message(session: Session, campaign: Campaign, member: Member) -> None:
    events.emit(session, merchant_id=campaign.merchant_id, type="campaign.message", member_id=member.id,
                program_id=campaign.program_id,
                data={"campaign_id": campaign.id, "title": campaign.title or {}, "body": campaign.body or {}})


def _finish(session: Session, campaign: Campaign, now: datetime) -> None:
    campaign.status, campaign.finished_at = "sent", now
    events.emit(session, merchant_id=campaign.merchant_id, type="campaign.delivered", program_id=campaign.program_id,
                data={"campaign_id": campaign.id, "name": campaign.name, **results(session, campaign)})


def cancel_campaign(session: Session, campaign: Campaign, now: datetime) -> Campaign:
    """Stop a scheduled campaign, or one sending (between two batches); the cards it reached lose its lines."""
    if campaign.status not in ("scheduled", "sending"):
        raise Conflict(f"Campaign {campaign.id} is {campaign.status}: there is nothing left to cancel.")
    campaign.status, campaign.cancelled_at, campaign.finished_at = "cancelled", now, now
    if campaign.started_at is not None:
        _queue(session, CAMPAIGN_CARDS, campaign, 0, now)
    return campaign


def clear_ended_offers(session: Session, as_of: datetime) -> int:
    """Scheduled job: every offer that ended is taken off its recipients' cards (their cards re-issued)."""
    ended = session.scalars(select(Campaign).where(Campaign.offer_ends_at <= as_of,
                                                   Campaign.offer_cleared_at.is_(None))
                            .with_for_update(skip_locked=True)).all()
    for campaign in ended:
        campaign.offer_cleared_at = as_of
        if campaign.started_at is not None and campaign.status != "cancelled":  # cancelling re-issued them
            _queue(session, CAMPAIGN_CARDS, campaign, 0, as_of)
    return len(ended)


def reissue_batch(session: Session, campaign_id: int, after: int, now: datetime, size: int | None = None) -> int:
    """A card change for the next `size` recipients the campaign reached (their cards no longer show it)."""
    campaign, size = session.get(Campaign, campaign_id), size or BATCH_SIZE
    ids = list(session.scalars(select(CampaignRecipient.member_id).where(
        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.status == "delivered",
        CampaignRecipient.member_id > after).order_by(CampaignRecipient.member_id).limit(size)))
    members = [member for member in lock_members(session, ids) if member.deleted_at is None]
    with_devices, with_google = card_holders(session, ids)
    pushes = 0
    with session.no_autoflush:
        for member in members:
            card_changed(session, member, holders=(member.id in with_devices, member.id in with_google))
            pushes += member.apple_devices
    if len(ids) == size:
        _queue(session, CAMPAIGN_CARDS, campaign, ids[-1],
               now + timedelta(seconds=pushes / APPLE_FETCHES_PER_SECOND))
    return len(ids)


def results(session: Session, campaign: Campaign) -> dict:
    """targeted (the segment's count when sending began), delivered, capped (skipped for the frequency cap),
    card_updated (delivered to a card in a wallet), redeemed (offers used at the till)."""
    delivered = CampaignRecipient.status == "delivered"
    row = session.execute(select(
        func.count(case((delivered, 1))), func.count(case((CampaignRecipient.status == "capped", 1))),
        func.count(case((delivered & CampaignRecipient.card_updated.is_(True), 1))),
        func.count(CampaignRecipient.redeemed_at)).where(CampaignRecipient.campaign_id == campaign.id)).one()
    return {"targeted": campaign.targeted or 0, "delivered": row[0], "capped": row[1], "card_updated": row[2],
            "redeemed": row[3]}


def redeem_offer(session: Session, campaign: Campaign, member_id: int, now: datetime) -> CampaignRecipient:
    """The till used the member's offer: counted once (a second call returns the first redemption)."""
    if campaign.offer_ends_at is None:
        raise Conflict(f"Campaign {campaign.id} has no offer.")
    recipient = session.scalar(select(CampaignRecipient).where(
        CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.member_id == member_id).with_for_update())
    if recipient is None or recipient.status != "delivered":
        raise Conflict(f"Member {member_id} did not receive campaign {campaign.id}'s offer.")
    if recipient.redeemed_at is not None:
        return recipient
    if campaign.status == "cancelled" or _offer_over(campaign, now):
        raise Conflict(f"Campaign {campaign.id}'s offer is no longer valid.")
    recipient.redeemed_at = now
    return recipient


def campaign_notices(session: Session, member: Member, now: datetime | None = None) -> list[CardNotice]:
    """The newest campaign message the member received (for MESSAGE_SHOWN_FOR) and every running offer."""
    now = now or utcnow()
    received = session.scalars(
        select(Campaign).join(CampaignRecipient, CampaignRecipient.campaign_id == Campaign.id)
        .where(CampaignRecipient.member_id == member.id, CampaignRecipient.status == "delivered",
               Campaign.status != "cancelled", CampaignRecipient.created_at > now - MESSAGE_SHOWN_FOR)
        .order_by(Campaign.id.desc()).limit(10)).all()
    notices, message_shown = [], False
    for campaign in received:
        if not message_shown and (campaign.title or campaign.body):
            message_shown = True
            notices.append(CardNotice(key=f"campaign_{campaign.id}", change_message="%@",
                                      label=localized(campaign.title, member.locale) or campaign.name,
                                      text=localized(campaign.body, member.locale) or ""))
        if campaign.offer_text and not _offer_over(campaign, now):
            notices.append(CardNotice(key=f"offer_{campaign.id}", change_message="%@",
                                      label=_offer_label(member, campaign.offer_ends_at),
                                      text=localized(campaign.offer_text, member.locale)))
    return notices


def _offer_label(member: Member, ends_at: datetime) -> str:
    day = last_day(program_zone(member.program), ends_at)
    shown = {"en": f"{day:%b} {day.day}", "ja": f"{day.month}月{day.day}日", "ko": f"{day.month}월 {day.day}일"}
    locale = member.locale if member.locale in _OFFER_LABEL else FALLBACK_LOCALE
    return _OFFER_LABEL[locale].format(day=shown[locale])


def localized(texts: dict | None, locale: str) -> str:
    """The member's language, else English, else whichever there is."""
    if not texts:
        return ""
    return texts.get(locale) or texts.get(FALLBACK_LOCALE) or next(iter(texts.values()), "")
