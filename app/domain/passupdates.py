"""Marks that what a member's card shows has changed, in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import Member, utcnow


def card_changed(session: Session, member: Member) -> None:
    """Bump the pass version; Apple's `Last-Modified` and the signed-pass cache key follow it."""
    member.pass_version = (member.pass_version or 0) + 1
    member.pass_updated_at = utcnow()
