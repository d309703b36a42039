"""Things that happened that outside systems hear about: a merchant's webhooks, the merchant app's FCM tokens,
the member's Google Wallet object (its messages). One call per happening, from the domain code where it
happened: `emit` asks each channel whether anybody listens (a webhook subscribed to the type, an FCM token on the
member, ...) and writes one outbox event per listening channel in the caller's transaction. So nothing is queued
for nobody, and nothing is lost when Redis or a receiver is down: workers deliver the rows after commit.

Channels register once, at import of their domain module (`add_channel`), keyed by their outbox kind. A
channel's `listens` runs inside the earn path: it must be cheap (a cached or indexed lookup), never I/O."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.models import OutboxEvent, utcnow

EVENT_TYPES = (
    "member.enrolled", "member.deleted", "points.earned", "points.redeemed", "points.reversed", "points.expiring",
    "tier.changed", "reward.unlocked", "reward.redeemed", "hold.captured", "pass.installed", "pass.removed",
    "campaign.message",  # a merchant's message to a member (data: per-locale `title` and `body`)
    "membership.renewal_due",
    "referral.completed",  # a referral's first reward paid (data: the referral, trigger, points, qualifying purchase)
    "campaign.delivered",  # a campaign finished sending (data: campaign_id, name and its results)
    "challenge.completed",  # a member reached a challenge's goal (app/domain/challenges.py)
)

# (session, merchant_id, event type, member_id or None) -> does anybody on this channel want it?
Listens = Callable[[Session, int, str, "int | None"], bool]


@dataclass(frozen=True)
class Channel:
    kind: str  # the outbox kind whose worker handler delivers it
    listens: Listens


_channels: dict[str, Channel] = {}


def add_channel(kind: str, listens: Listens) -> None:
    """Register (or replace) the channel that delivers outbox events of `kind`."""
    _channels[kind] = Channel(kind, listens)


def emit(session: Session, *, merchant_id: int, type: str, data: dict, member_id: int | None = None,
         program_id: int | None = None) -> dict | None:
    """Record `type` for every listening channel; returns the event body (`id`, `type`, `created_at`, `data`,
    the shape webhooks receive) or None when nobody listens."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    listening = [channel for channel in _channels.values()
                 if channel.listens(session, merchant_id, type, member_id)]
    if not listening:
        return None
    body = {"id": f"evt_{uuid.uuid4().hex}", "type": type, "created_at": utcnow().isoformat(), "data": data}
    for channel in listening:
        session.add(OutboxEvent(kind=channel.kind, member_id=member_id, program_id=program_id,
                                payload={"merchant_id": merchant_id, "event": body}))
    return body
