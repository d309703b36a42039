"""Delivering a campaign's batches (app/domain/campaigns.py): each job handles one batch of members and commits
it together with the row of the next batch, so a campaign of any size streams through the outbox and a
cancellation takes effect between two batches."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from app.domain.campaigns import CAMPAIGN_BATCH, CAMPAIGN_CARDS, reissue_batch, send_batch
from app.models import OutboxEvent, utcnow


def deliver_batch(app: Flask, session: Session, event: OutboxEvent) -> None:
    send_batch(session, event.payload["campaign_id"], event.payload["after"], utcnow())
    session.commit()


def deliver_cards(app: Flask, session: Session, event: OutboxEvent) -> None:
    reissue_batch(session, event.payload["campaign_id"], event.payload["after"], utcnow())
    session.commit()


# outbox kind -> handler, merged into workers.jobs.HANDLERS
HANDLERS = {CAMPAIGN_BATCH: deliver_batch, CAMPAIGN_CARDS: deliver_cards}
