"""The monthly leaderboard of a program: members who opted in, ranked by points earned this calendar month on the
program's calendar, shown under the display name they chose (never their name or email).

"Points earned" are the credits that count towards a tier (earns, bonuses, promotions, referrals) made this month,
less what reversals made this month took back from such credits (a refund lowers the score in the month it
happens). Members with nothing earned this month are not listed. Ties share a rank and the next rank skips
(1, 2, 2, 4); tied members are listed by display name, then by member id, so the order never changes between
two reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from app.domain.calendar import period_end, period_start, program_zone
from app.domain.errors import InvalidInput
from app.domain.passupdates import card_changed
from app.domain.tiers import QUALIFYING_KINDS
from app.models import LedgerEntry, Member, Program

MAX_DISPLAY_NAME = 40


@dataclass(frozen=True)
class Standing:
    rank: int
    member_id: int
    display_name: str
    points: int


def set_opt_in(session: Session, member: Member, opt_in: bool, display_name: str | None) -> None:
    """Join the board under `display_name`, or leave it (the display name is forgotten)."""
    if opt_in:
        name = (display_name or member.leaderboard_name or "").strip()
        if not name:
            raise InvalidInput("display_name", "Joining the leaderboard needs a display name.")
        if len(name) > MAX_DISPLAY_NAME:
            raise InvalidInput("display_name", f"At most {MAX_DISPLAY_NAME} characters.")
        private = {value.strip().casefold() for value in (member.name, member.email) if value}
        digits = "".join(filter(str.isdigit, name))
        phone = "".join(filter(str.isdigit, member.phone or ""))
        same_phone = phone and len(digits) >= 6 and (digits in phone or phone.endswith(digits.lstrip("0")))
        if name.casefold() in private or "@" in name or same_phone:  # 090-... is +8190... written at home
            raise InvalidInput("display_name", "Choose a name other than your own name, email address or phone "
                                               "number: the leaderboard is public.")
        member.leaderboard_opt_in, member.leaderboard_name = True, name
    else:
        member.leaderboard_opt_in, member.leaderboard_name = False, None
    card_changed(session, member)
    session.flush()


def standings(session: Session, program: Program, now: datetime, limit: int | None = None) -> list[Standing]:
    """The board as of `now`, best first; `limit` cuts the list, never the ranks."""
    zone = program_zone(program)
    start, end = period_start(zone, now, "month"), period_end(zone, now, "month")
    original = aliased(LedgerEntry)
    earned = case((LedgerEntry.kind.in_(QUALIFYING_KINDS), LedgerEntry.points),
                  (original.kind.in_(QUALIFYING_KINDS), -(func.abs(LedgerEntry.points) + LedgerEntry.shortfall)),
                  else_=0)
    total = func.sum(earned)
    rows = session.execute(
        select(Member.id, Member.leaderboard_name, total).select_from(LedgerEntry)
        .join(Member, Member.id == LedgerEntry.member_id)
        .outerjoin(original, original.id == LedgerEntry.reverses_id)
        .where(LedgerEntry.merchant_id == program.merchant_id, LedgerEntry.created_at >= start,
               LedgerEntry.created_at < end, Member.program_id == program.id, Member.leaderboard_opt_in.is_(True),
               Member.deleted_at.is_(None))
        .group_by(Member.id, Member.leaderboard_name).having(total > 0)
        .order_by(total.desc(), Member.leaderboard_name, Member.id)).all()
    board, rank, previous = [], 0, None
    for position, (member_id, name, points) in enumerate(rows, start=1):
        if points != previous:
            rank, previous = position, points
        board.append(Standing(rank, member_id, name, int(points)))
    return board[:limit] if limit is not None else board


def rank_of(session: Session, member: Member, now: datetime) -> Standing | None:
    """The member's place this month, or None when they have not opted in or earned nothing yet."""
    if not member.leaderboard_opt_in:
        return None
    return next((s for s in standings(session, member.program, now) if s.member_id == member.id), None)
