"""The lines program features put on a member's card (offers, challenges, surveys, referral link), for both the
Apple pass's back and the Google object's text modules. One call per feature, in the order they show; each
feature's function reads what it needs and returns its `CardNotice`s in the member's language.

A feature whose lines change must also call `passupdates.card_changed` in the same transaction, so the
Apple card is pushed and the Google object patched."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.challenge_cards import challenge_notices
from app.domain.campaigns import campaign_notices
from app.domain.offers import offer_notices
from app.domain.referrals import referral_notices
from app.domain.surprises import surprise_notices
from app.domain.surveys import survey_notices
from app.models import Member, utcnow
from app.services import app_config
from app.survey_links import survey_url
from passes.storecard import MAX_NOTICES, CardNotice


def card_notices(session: Session, member: Member) -> tuple[CardNotice, ...]:
    """Every feature's lines for this member, at most MAX_NOTICES (the first ones win)."""
    if member.deleted_at is not None:
        return ()
    notices: list[CardNotice] = []
    now = utcnow()
    notices += campaign_notices(session, member, now)  # the timely ones first
    notices += surprise_notices(session, member, now)
    notices += challenge_notices(session, member)
    notices += offer_notices(session, member)
    notices += survey_notices(session, member, now, lambda invitation: survey_url(member.program, invitation))
    notices += referral_notices(member, app_config().public_base_url)
    return tuple(notices[:MAX_NOTICES])
