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


def _month_scores(program: Program, now: datetime):
    """(member_id, display name, points) of each opted-in member with points this month, a query to build on."""
    zone = program_zone(program)
    start, end = period_start(zone, now, "month"), period_end(zone, now, "month")
    original = aliased(LedgerEntry)
    earned = case((LedgerEntry.kind.in_(QUALIFYING_KINDS), LedgerEntry.points),
                  (original.kind.in_(QUALIFYING_KINDS), -(func.abs(LedgerEntry.points) + LedgerEntry.shortfall)),
                  else_=0)
    total = func.sum(earned)
    return (select(Member.id.label("member_id"), Member.leaderboard_name.label("display_name"),
                   total.label("points"))
            .select_from(LedgerEntry)
            .join(Member, Member.id == LedgerEntry.member_id)
            .outerjoin(original, original.id == LedgerEntry.reverses_id)
            .where(LedgerEntry.merchant_id == program.merchant_id, LedgerEntry.created_at >= start,
                   LedgerEntry.created_at < end, Member.program_id == program.id,
                   Member.leaderboard_opt_in.is_(True), Member.deleted_at.is_(None))
            .group_by(Member.id, Member.leaderboard_name).having(total > 0))


def standings(session: Session, program: Program, now: datetime, limit: int | None = None) -> list[Standing]:
    """The board as of `now`, best first; `limit` cuts the list, never the ranks."""
    scores = _month_scores(program, now).subquery()
    rows = session.execute(select(scores.c.member_id, scores.c.display_name, scores.c.points)
                           .order_by(scores.c.points.desc(), scores.c.display_name, scores.c.member_id)).all()
    board, rank, previous = [], 0, None
    for position, (member_id, name, points) in enumerate(rows, start=1):
        if points != previous:
            rank, previous = position, points
        board.append(Standing(rank, member_id, name, int(points)))
    return board[:limit] if limit is not None else board


def rank_of(session: Session, member: Member, now: datetime) -> Standing | None:
    """The member's place this month, or None when they have not opted in or earned nothing yet. Every card
    build of an opted-in member asks, so the database ranks and returns one row, not the whole board."""
    if not member.leaderboard_opt_in:
        return None
    scores = _month_scores(member.program, now).cte("scores")
    others = scores.alias("others")
    ahead = select(func.count()).select_from(others).where(others.c.points > scores.c.points).scalar_subquery()
    row = session.execute(select(scores.c.display_name, scores.c.points, ahead)
                          .where(scores.c.member_id == member.id)).one_or_none()
    if row is None:
        return None
    name, points, members_ahead = row
    return Standing(members_ahead + 1, member.id, name, int(points))
