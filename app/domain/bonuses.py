"""Bonus actions: points for something other than a purchase (a review, a share, a birthday, feedback), as the
program configures them (`bonus_actions`: kind -> {"points", "cap"?, "per"?}). A cap counts the member's bonuses
of that kind ever, or per calendar month or year on the program's calendar. Each is a `bonus` entry whose rule
names the action, so the statement says why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.calendar import period_start, program_zone
from app.domain.errors import Conflict, InvalidInput
from app.domain.ledger import SYSTEM, Actor, earn_points, lock_member
from app.models import LedgerEntry, Member

BONUS_KINDS = ("review", "share", "birthday", "feedback")
CAP_PERIODS = ("ever", "month", "year")


def award_bonus(session: Session, member: Member, kind: str, now: datetime,
                reference: str | None = None, by: Actor = SYSTEM) -> LedgerEntry:
    """Credit the program's bonus for `kind`; refused (nothing written) when the program gives none or the
    member reached its cap."""
    member = lock_member(session, member)
    action = (member.program.bonus_actions or {}).get(kind)
    if not action or not action.get("points"):
        raise InvalidInput("kind", f"This program gives no bonus for {kind}.")
    rule = f"bonus:{kind}"
    cap, per = action.get("cap"), action.get("per", "ever")
    if cap is not None:
        query = select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.member_id == member.id, LedgerEntry.kind == "bonus", LedgerEntry.rule == rule)
        if per != "ever":
            query = query.where(LedgerEntry.created_at >= period_start(program_zone(member.program), now, per))
        if session.scalar(query) >= cap:
            period = "" if per == "ever" else f" this {per}"
            raise Conflict(f"The member already had {cap} {kind} bonus(es){period}, the program's cap.")
    return earn_points(session, member, action["points"], kind="bonus", rule=rule, reference=reference,
                       reason=f"Bonus: {kind}", by=by)
