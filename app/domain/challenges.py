"""Challenges: a goal over a window, rewarded with bonus points and/or a badge.

Goals: `visits` (purchases: `earn` entries), `spend` (their money) or `category` (items of one line-item
category). Windows: the last `window_days` days (rolling; a purchase exactly that many days old still counts),
this calendar month on the program's calendar, or the challenge's whole run. A challenge runs from `starts_at`
(inclusive) to `ends_at` (exclusive), either optional; `repeatable` ones start again from zero after each
completion, the others complete once per member.

Progress is kept as one `challenge_progress` row per qualifying earn and running challenge, written in the earn's
transaction; the progress is the sum of a member's rows in the window not yet used by a completion (one indexed
query for all challenges at once). Outside the span its challenges run (`programs.challenges_from` and
`challenges_until`, read with the member's lock), an earn costs nothing: no statement at all.

A reversal (a refund) of a qualifying earn: a full reversal withdraws its contribution from every challenge; a
partial one scales a `spend` contribution down by the share of points reversed (a visit stays a visit, items
stay bought: the points say how much money, not which items, came back). A completion already granted stays
granted, unless the challenge has `clawback` and the reversed earn was one of those that completed it: then the
completion is revoked, its bonus reversed (any shortfall reported in the ledger as usual), its badge taken back
if no other completion gave it, and the purchases it had used count again towards the next one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.domain.calendar import period_start, program_zone
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.events import emit
from app.domain.ledger import earn_points, lock_member_id, reverse_entry
from app.domain.passupdates import design_changed
from app.models import Challenge, ChallengeCompletion, ChallengeProgress, LedgerEntry, Member, Program

GOALS = ("visits", "spend", "category")
WINDOWS = ("days", "month", "challenge")
MAX_WINDOW_DAYS = 366
EDITABLE = ("name", "goal", "target", "category", "window", "window_days", "reward_points", "badge", "repeatable",
            "clawback", "starts_at", "ends_at")


@dataclass(frozen=True)
class Progress:
    """Where a member stands in one running challenge."""
    challenge: Challenge
    progress: Decimal  # towards the next completion (0 once a non-repeatable challenge is done)
    completions: int  # not revoked
    last_completed_at: datetime | None

    @property
    def done(self) -> bool:
        """A once-only challenge the member completed: nothing more to win."""
        return not self.challenge.repeatable and self.completions > 0


def create_challenge(session: Session, program: Program, data: dict, now: datetime) -> Challenge:
    challenge = Challenge(program_id=program.id, merchant_id=program.merchant_id, reward_points=0,
                          repeatable=False, clawback=False, created_at=now)
    _apply(challenge, data)
    session.add(challenge)
    session.flush()
    challenges_changed(session, program, now)
    return challenge


def update_challenge(session: Session, challenge: Challenge, data: dict, now: datetime) -> Challenge:
    """Change anything but the goal (and its category); progress already made counts under the new target and
    window."""
    _apply(challenge, data)
    session.flush()
    challenges_changed(session, session.get(Program, challenge.program_id), now)
    return challenge


def retire_challenge(session: Session, challenge: Challenge, now: datetime) -> None:
    """Stop it at once; its completions (and the badges and points they gave) stay."""
    if challenge.retired_at is None:
        challenge.retired_at = now
        session.flush()
        challenges_changed(session, session.get(Program, challenge.program_id), now)


def challenges_changed(session: Session, program: Program, now: datetime) -> None:
    """Every card of the program shows challenges: re-issue them, and note whether any is still to run."""
    _set_live(session, program, now)
    program.challenges_shown = _digest(_running(_live(session, program.id, now), now))
    design_changed(session, program)


def show_challenges(session: Session, as_of: datetime) -> int:
    """Scheduled: re-issue the cards of every program where a challenge started or ended by the clock since the
    cards last showed them (a program whose last challenge is over then drops out of the next runs). Returns
    how many programs' cards changed; run twice as of the same instant, the second changes nothing."""
    changed = 0
    for program in list(session.scalars(select(Program).where(Program.challenges_from.is_not(None))
                                        .order_by(Program.id))):
        shown = _digest(_running(_live(session, program.id, as_of), as_of))
        if shown != program.challenges_shown:
            program.challenges_shown = shown
            design_changed(session, program)
            changed += 1
        if program.challenges_until is not None and program.challenges_until <= as_of:
            _set_live(session, program, as_of)
    session.flush()
    return changed


def _digest(running: list[Challenge]) -> str:
    return hashlib.sha256(",".join(str(c.id) for c in running).encode()).hexdigest()[:16]


def _set_live(session: Session, program: Program, now: datetime) -> None:
    """Write when the program's challenges run, under the program row's lock (two merchants' saves at once
    cannot each write a span that misses the other's challenge)."""
    session.execute(select(Program.id).where(Program.id == program.id).with_for_update())
    live = _live(session, program.id, now)
    starts = [c.starts_at for c in live]
    ends = [c.ends_at for c in live]
    span = (min((s or now for s in starts), default=None),
            None if not live or None in ends else max(ends))
    session.execute(update(Program).where(Program.id == program.id)
                    .values(challenges_from=span[0], challenges_until=span[1]))
    set_committed_value(program, "challenges_from", span[0])
    set_committed_value(program, "challenges_until", span[1])


def may_run(program: Program, now: datetime) -> bool:
    """Whether some challenge of the program may be running at `now`, from the program row alone."""
    return program.challenges_from is not None and program.challenges_from <= now and \
        (program.challenges_until is None or now < program.challenges_until)


def _apply(challenge: Challenge, data: dict) -> None:
    for name in ("goal", "category"):  # progress is counted in the goal's unit: a new goal is a new challenge
        if challenge.id is not None and name in data and data[name] != getattr(challenge, name):
            raise InvalidInput(name, "A challenge's goal cannot change: retire it and add a new one.")
    for name in EDITABLE:
        if name in data:
            setattr(challenge, name, data[name])
    if challenge.goal not in GOALS:
        raise InvalidInput("goal", f"Must be one of {', '.join(GOALS)}.")
    if challenge.window not in WINDOWS:
        raise InvalidInput("window", f"Must be one of {', '.join(WINDOWS)}.")
    if challenge.goal == "category" and not challenge.category:
        raise InvalidInput("category", "A category challenge needs the line-item category it counts.")
    if challenge.goal != "category":
        challenge.category = None
    if challenge.window == "days" and not challenge.window_days:
        raise InvalidInput("window_days", f"A rolling window needs its length in days (1 to {MAX_WINDOW_DAYS}).")
    if challenge.window != "days":
        challenge.window_days = None
    if challenge.target is None or Decimal(challenge.target) <= 0:
        raise InvalidInput("target", "Must be more than 0.")
    if challenge.goal != "spend" and Decimal(challenge.target) != int(challenge.target):
        raise InvalidInput("target", "Visits and items are whole numbers.")
    if not challenge.reward_points and not challenge.badge:
        raise InvalidInput("reward_points", "A challenge gives points, a badge or both.")
    if challenge.starts_at and challenge.ends_at and challenge.ends_at <= challenge.starts_at:
        raise InvalidInput("ends_at", "Must be after starts_at.")


def get_challenge(session: Session, merchant_id: int, challenge_id: int) -> Challenge:
    challenge = session.get(Challenge, challenge_id)
    if challenge is None or challenge.merchant_id != merchant_id:
        raise NotFound(f"No challenge {challenge_id}.")
    return challenge


def program_challenges(session: Session, program_id: int, include_retired: bool = False) -> list[Challenge]:
    query = select(Challenge).where(Challenge.program_id == program_id)
    if not include_retired:
        query = query.where(Challenge.retired_at.is_(None))
    return list(session.scalars(query.order_by(Challenge.id)))


def completion_counts(session: Session, challenge_ids: list[int]) -> dict[int, int]:
    """Completions (not revoked) per challenge, for the merchant's list."""
    rows = session.execute(select(ChallengeCompletion.challenge_id, func.count()).where(
        ChallengeCompletion.challenge_id.in_(challenge_ids), ChallengeCompletion.revoked_at.is_(None))
        .group_by(ChallengeCompletion.challenge_id)).all() if challenge_ids else []
    return dict(rows)


def completions_of(session: Session, challenge: Challenge, limit: int) -> list[ChallengeCompletion]:
    return list(session.scalars(select(ChallengeCompletion).where(ChallengeCompletion.challenge_id == challenge.id)
                                .order_by(ChallengeCompletion.id.desc()).limit(limit)))


def _live(session: Session, program_id: int, now: datetime) -> list[Challenge]:
    """Challenges running now or still to start."""
    return list(session.scalars(select(Challenge).where(
        Challenge.program_id == program_id, Challenge.retired_at.is_(None),
        or_(Challenge.ends_at.is_(None), Challenge.ends_at > now)).order_by(Challenge.id)))


def _running(challenges: list[Challenge], now: datetime) -> list[Challenge]:
    return [c for c in challenges if c.starts_at is None or c.starts_at <= now]


def window_start(challenge: Challenge, program: Program, now: datetime) -> datetime | None:
    """The earliest purchase time that counts now; None: every purchase since the challenge began."""
    if challenge.window == "days":
        return now - timedelta(days=challenge.window_days)
    if challenge.window == "month":
        return period_start(program_zone(program), now, "month")
    return challenge.starts_at


def contribution(challenge: Challenge, entry: LedgerEntry, items: list[dict] | None) -> Decimal:
    """What one purchase adds to a challenge: a visit, its money, or its items of the category."""
    if challenge.goal == "visits":
        return Decimal(1)
    if challenge.goal == "spend":
        return Decimal(entry.amount or 0)
    return Decimal(sum(item.get("quantity", 1) for item in items or () if item.get("category") == challenge.category))


def record_purchase(session: Session, member: Member, entry: LedgerEntry, items: list[dict] | None,
                    now: datetime) -> list[ChallengeCompletion]:
    """Count an `earn` entry towards the program's running challenges, in the earn's transaction, and complete
    those whose goal it reaches. Nothing at all is read when the program has no challenge."""
    program = member.program
    if not may_run(program, now) or entry.kind != "earn":
        return []
    running = _running(_live(session, program.id, now), now)
    stats = _stats(session, member.id, [c.id for c in running if not c.repeatable])
    rows = [dict(challenge_id=c.id, member_id=member.id, entry_id=entry.id, value=value, created_at=now)
            for c in running if c.id not in stats and (value := contribution(c, entry, items)) > 0]
    if not rows:
        return []
    session.execute(insert(ChallengeProgress), rows)  # one executemany, however many challenges
    counted = [c for c in running if any(row["challenge_id"] == c.id for row in rows)]
    totals = _totals(session, member.id, counted, program, now)
    return [_complete(session, member, c, now) for c in counted if totals.get(c.id, 0) >= c.target]


def _totals(session: Session, member_id: int, challenges: list[Challenge], program: Program,
            now: datetime) -> dict[int, Decimal]:
    """Progress towards the next completion, per challenge: one query over the member's unused rows."""
    if not challenges:
        return {}
    windows = []
    for challenge in challenges:
        start = window_start(challenge, program, now)
        windows.append(and_(ChallengeProgress.challenge_id == challenge.id, ChallengeProgress.created_at >= start)
                       if start is not None else ChallengeProgress.challenge_id == challenge.id)
    rows = session.execute(select(ChallengeProgress.challenge_id, func.sum(ChallengeProgress.value)).where(
        ChallengeProgress.member_id == member_id, ChallengeProgress.completion_id.is_(None),
        ChallengeProgress.created_at <= now, or_(*windows)).group_by(ChallengeProgress.challenge_id)).all()
    return {challenge_id: Decimal(total) for challenge_id, total in rows}


def _stats(session: Session, member_id: int, challenge_ids: list[int]) -> dict[int, tuple[int, datetime]]:
    """(completions, the latest) per challenge the member completed, among `challenge_ids`."""
    if not challenge_ids:
        return {}
    rows = session.execute(select(ChallengeCompletion.challenge_id, func.count(),
                                  func.max(ChallengeCompletion.completed_at)).where(
        ChallengeCompletion.member_id == member_id, ChallengeCompletion.challenge_id.in_(challenge_ids),
        ChallengeCompletion.revoked_at.is_(None)).group_by(ChallengeCompletion.challenge_id)).all()
    return {challenge_id: (count, latest) for challenge_id, count, latest in rows}


def _complete(session: Session, member: Member, challenge: Challenge, now: datetime) -> ChallengeCompletion:
    """Record the completion, use up the rows that made it, grant the points and the badge, tell the outside."""
    completion = ChallengeCompletion(challenge_id=challenge.id, member_id=member.id, badge=challenge.badge,
                                     completed_at=now)
    session.add(completion)
    session.flush()
    start = window_start(challenge, member.program, now)
    session.execute(update(ChallengeProgress).where(
        ChallengeProgress.member_id == member.id, ChallengeProgress.challenge_id == challenge.id,
        ChallengeProgress.completion_id.is_(None), ChallengeProgress.created_at <= now,
        *([ChallengeProgress.created_at >= start] if start is not None else []))
        .values(completion_id=completion.id))
    if challenge.reward_points:
        bonus = earn_points(session, member, challenge.reward_points, kind="bonus", rule=f"challenge:{challenge.id}",
                            reason=f"Challenge: {challenge.name}"[:200])
        completion.bonus_entry_id = bonus.id
    if challenge.badge and challenge.badge not in (member.badges or []):
        member.badges = [*(member.badges or []), challenge.badge]
    session.flush()
    emit(session, merchant_id=member.merchant_id, type="challenge.completed", member_id=member.id,
         program_id=member.program_id, data=completion_event(completion, challenge, member))
    return completion


def completion_event(completion: ChallengeCompletion, challenge: Challenge, member: Member) -> dict:
    return {"member_id": member.id, "program_id": member.program_id, "external_id": member.external_id,
            "completion_id": completion.id, "completed_at": completion.completed_at.isoformat(),
            "challenge": {"id": challenge.id, "name": challenge.name, "goal": challenge.goal,
                          "reward_points": challenge.reward_points, "badge": challenge.badge},
            "transaction_id": completion.bonus_entry_id, "points_balance": member.points_balance,
            "badges": list(member.badges or [])}


def after_reversal(session: Session, reversal: LedgerEntry, now: datetime) -> None:
    """Withdraw (all or part of) the reversed earn's contributions; revoke what a `clawback` challenge gave for
    it. See the module's docstring for the rule."""
    rows = list(session.scalars(select(ChallengeProgress).where(ChallengeProgress.entry_id == reversal.reverses_id)))
    if not rows:
        return
    original = session.get(LedgerEntry, reversal.reverses_id)
    reversed_points = session.scalar(select(func.coalesce(func.sum(-LedgerEntry.points + LedgerEntry.shortfall), 0))
                                     .where(LedgerEntry.reverses_id == original.id))
    kept = max(Decimal(original.points - reversed_points) / original.points, Decimal(0))
    for row in rows:
        challenge = session.get(Challenge, row.challenge_id)
        value = Decimal(0) if kept == 0 else (Decimal(original.amount or 0) * kept).quantize(Decimal("0.01")) \
            if challenge.goal == "spend" else row.value
        if value == row.value:
            continue
        row.value = value
        if row.completion_id is not None and challenge.clawback:
            _revoke(session, session.get(ChallengeCompletion, row.completion_id), challenge, original.merchant_id, now)
    session.flush()


def _revoke(session: Session, completion: ChallengeCompletion, challenge: Challenge, merchant_id: int,
            now: datetime) -> None:
    if completion.revoked_at is not None:
        return
    completion.revoked_at = now
    session.execute(update(ChallengeProgress).where(ChallengeProgress.completion_id == completion.id)
                    .values(completion_id=None))
    if completion.bonus_entry_id is not None:
        try:
            reverse_entry(session, merchant_id, completion.bonus_entry_id,
                          reference=f"challenge:{challenge.id} revoked")
        except Conflict:
            pass  # the merchant already reversed the bonus by hand: nothing more to take back (nothing written)
    member = lock_member_id(session, completion.member_id)  # its badges change: a completion may race this
    if completion.badge and not session.scalar(select(func.count()).select_from(ChallengeCompletion).where(
            ChallengeCompletion.member_id == member.id, ChallengeCompletion.badge == completion.badge,
            ChallengeCompletion.revoked_at.is_(None))):
        member.badges = [badge for badge in member.badges or [] if badge != completion.badge]


def member_progress(session: Session, member: Member, now: datetime) -> list[Progress]:
    """The member's standing in every running challenge (three indexed queries; none without challenges)."""
    if not may_run(member.program, now):
        return []
    running = _running(_live(session, member.program_id, now), now)
    if not running:
        return []
    stats = _stats(session, member.id, [c.id for c in running])
    totals = _totals(session, member.id, running, member.program, now)
    result = []
    for challenge in running:
        count, latest = stats.get(challenge.id, (0, None))
        progress = Decimal(0) if count and not challenge.repeatable else totals.get(challenge.id, Decimal(0))
        result.append(Progress(challenge, progress, count, latest))
    return result
