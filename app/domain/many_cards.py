"""Many members' cards changed at once (a new offer template, a survey switched off): a few are each updated on
their own, locked and pushed; many become one design change, which the program fan-out re-issues in batches,
plus the Google objects of just those members (Google keeps what each card shows on its object)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.googlewallet import object_changed
from app.domain.ledger import lock_member_id
from app.domain.passupdates import card_changed, design_changed
from app.domain.programs import lock_program
from app.models import GoogleObject, Member, Program

BATCH = 1000
CARD_BY_CARD = 200  # more changed cards than this: one design change instead


def cards_changed(session: Session, program: Program, member_ids: list[int]) -> None:
    """The members' cards show something new; the caller commits."""
    if len(member_ids) <= CARD_BY_CARD:
        for member_id in member_ids:
            member = lock_member_id(session, member_id)
            if member is not None:
                card_changed(session, member)
        return
    design_changed(session, lock_program(session, program))
    for start in range(0, len(member_ids), BATCH):
        chunk = member_ids[start:start + BATCH]
        for member in session.scalars(select(Member).where(Member.id.in_(chunk), Member.id.in_(
                select(GoogleObject.member_id).where(GoogleObject.member_id.in_(chunk))))):
            object_changed(session, member)
