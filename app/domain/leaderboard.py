"""The monthly leaderboard of a program: members who opted in, ranked by points earned this calendar month on the
program's calendar, shown under the display name they chose (never their name or email).

"Points earned" are the credits that count towards a tier (earns, bonuses, promotions, referrals) made this month,
less what reversals made this month took back from such credits (a refund lowers the score in the month it
happens). Members with nothing earned this month are not listed. Ties share a rank and the next rank skips
(1, 2, 2, 4); tied members are listed by display name, then by member id, so the order never changes between
two reads."""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Select, bindparam, case, func, select
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
    forget_boards(session, member.program_id)  # who is listed changed: rank this program afresh
    card_changed(session, member)
    session.flush()


def _month_scores(program: Program, now: datetime, member_id: int | None = None) -> tuple[Select, dict]:
    """The query of (member_id, display name, points) of each opted-in member with points this month (or of one
    member), with its parameters: built once, as building it costs more than running it for one member."""
    zone = program_zone(program)
    params = {"start": period_start(zone, now, "month"), "end": period_end(zone, now, "month")}
    if member_id is None:
        return _scores_query(False), {**params, "merchant_id": program.merchant_id, "program_id": program.id}
    return _scores_query(True), {**params, "member_id": member_id}


@cache
def _scores_query(one_member: bool) -> Select:
    original = aliased(LedgerEntry)
    earned = case((LedgerEntry.kind.in_(QUALIFYING_KINDS), LedgerEntry.points),
                  (original.kind.in_(QUALIFYING_KINDS), -(func.abs(LedgerEntry.points) + LedgerEntry.shortfall)),
                  else_=0)
    total = func.sum(earned)
    whose = (LedgerEntry.member_id == bindparam("member_id"),) if one_member else \
        (LedgerEntry.merchant_id == bindparam("merchant_id"), Member.program_id == bindparam("program_id"))
    return (select(Member.id.label("member_id"), Member.leaderboard_name.label("display_name"),
                   total.label("points"))
            .select_from(LedgerEntry)
            .join(Member, Member.id == LedgerEntry.member_id)
            .outerjoin(original, original.id == LedgerEntry.reverses_id)
            .where(*whose, LedgerEntry.created_at >= bindparam("start"), LedgerEntry.created_at < bindparam("end"),
                   Member.leaderboard_opt_in.is_(True), Member.deleted_at.is_(None))
            .group_by(Member.id, Member.leaderboard_name).having(total > 0))


def standings(session: Session, program: Program, now: datetime, limit: int | None = None) -> list[Standing]:
    """The board as of `now`, best first; `limit` cuts the list, never the ranks."""
    query, params = _month_scores(program, now)
    scores = query.subquery()
    rows = session.execute(select(scores.c.member_id, scores.c.display_name, scores.c.points)
                           .order_by(scores.c.points.desc(), scores.c.display_name, scores.c.member_id), params).all()
    board, rank, previous = [], 0, None
    for position, (member_id, name, points) in enumerate(rows, start=1):
        if points != previous:
            rank, previous = position, points
        board.append(Standing(rank, member_id, name, int(points)))
    return board[:limit] if limit is not None else board


def rank_of(session: Session, member: Member, now: datetime) -> Standing | None:
    """The member's place this month, or None when they have not opted in or earned nothing yet.

    Every card build of an opted-in member asks, and ranking a big program's month costs the database about
    100 ms (bench/challenges.py), so the member's own score is read fresh (their own entries, by index) and
    compared with everyone else's scores as this process last ranked them, at most BOARD_SECONDS ago. A card
    shows its rank as of its last build anyway: others' earns never rebuild it."""
    if not member.leaderboard_opt_in:
        return None
    mine = session.execute(*_month_scores(member.program, now, member.id)).one_or_none()
    if mine is None:
        return None
    points = int(mine.points)
    others = _others_scores(session, member.program, now)
    ahead = len(others.ascending) - bisect_right(others.ascending, points)
    if others.by_member.get(member.id, 0) > points:
        ahead -= 1  # our own older, higher score (before a refund) is not someone ahead of us
    return Standing(ahead + 1, member.id, mine.display_name, points)


BOARD_SECONDS = 60.0
MAX_BOARDS = 1000  # programs ranked per process before the oldest are forgotten


@dataclass(frozen=True)
class _Board:
    made_at: float  # time.monotonic()
    ascending: list[int]  # every listed member's points, lowest first
    by_member: dict[int, int]


_boards: dict[tuple, _Board] = {}
_boards_lock = threading.Lock()  # a worker's threads add, evict and forget boards concurrently


def _others_scores(session: Session, program: Program, now: datetime) -> _Board:
    key = (str(session.get_bind().engine.url), program.id, period_start(program_zone(program), now, "month"))
    board = _boards.get(key)
    if board is None or time.monotonic() - board.made_at > BOARD_SECONDS:
        query, params = _month_scores(program, now)
        scores = query.subquery()
        by_member = {member_id: int(points) for member_id, points in
                     session.execute(select(scores.c.member_id, scores.c.points), params)}
        board = _Board(time.monotonic(), sorted(by_member.values()), by_member)
        with _boards_lock:
            if len(_boards) >= MAX_BOARDS:
                _boards.pop(next(iter(_boards)))
            _boards[key] = board
    return board


def forget_boards(session: Session, program_id: int) -> None:
    """Who is listed changed (an opt-in or out, a deletion): this process ranks the program afresh."""
    database = str(session.get_bind().engine.url)
    with _boards_lock:
        for key in [key for key in _boards if key[:2] == (database, program_id)]:
            del _boards[key]
