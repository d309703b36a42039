"""Request and response shapes of challenges, badges and the leaderboard (app/api/challenges.py)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from app.api.schemas import DecimalOut, DecimalText, Instant, JsonBoolean, WholeNumber
from app.domain.challenges import GOALS, MAX_WINDOW_DAYS, WINDOWS
from app.domain.leaderboard import MAX_DISPLAY_NAME
from app.domain.ledger import MAX_POINTS


class ChallengeIn(Schema):
    name = String(required=True, validate=Length(1, 80), metadata={"description": "Shown on the card"})
    goal = String(required=True, validate=OneOf(GOALS), metadata={
        "description": "visits: purchases; spend: money spent; category: items of `category` bought"})
    target = DecimalText(high=1_000_000, places=2, required=True, metadata={
        "description": "How many visits or items (whole numbers), or how much money"})
    category = String(validate=Length(1, 60), allow_none=True, metadata={
        "description": "The line-item category a `category` goal counts"})
    window = String(required=True, validate=OneOf(WINDOWS), metadata={
        "description": "days: the last `window_days` days (rolling); month: this calendar month in the program's "
                       "time zone; challenge: from `starts_at` to `ends_at`"})
    window_days = WholeNumber(validate=Range(min=1, max=MAX_WINDOW_DAYS), allow_none=True)
    reward_points = WholeNumber(validate=Range(min=0, max=MAX_POINTS), metadata={
        "description": "Bonus points on completion (a `bonus` ledger entry naming the challenge)"})
    badge = String(validate=Length(1, 40), allow_none=True, metadata={"description": "A badge won on completion"})
    repeatable = JsonBoolean(metadata={"description": "Start again from zero after each completion (default: once)"})
    clawback = JsonBoolean(metadata={
        "description": "A refund of a purchase that completed it revokes the completion and reverses its points"})
    starts_at = Instant(allow_none=True)
    ends_at = Instant(allow_none=True)


class ChallengePatch(ChallengeIn):
    """Any field; the rest stay as they are."""
    name = String(validate=Length(1, 80))
    goal = String(validate=OneOf(GOALS))
    target = DecimalText(high=1_000_000, places=2)
    window = String(validate=OneOf(WINDOWS))


class ChallengeOut(Schema):
    id = Integer()
    program_id = Integer()
    name = String()
    goal = String()
    target = DecimalOut(places=2)
    category = String(allow_none=True)
    window = String()
    window_days = Integer(allow_none=True)
    reward_points = Integer()
    badge = String(allow_none=True)
    repeatable = JsonBoolean()
    clawback = JsonBoolean()
    starts_at = DateTime(allow_none=True)
    ends_at = DateTime(allow_none=True)
    retired_at = DateTime(allow_none=True)
    created_at = DateTime()
    completions = Integer(metadata={"description": "Completions by members (revoked ones aside)"})


class ChallengeList(Schema):
    data = List(Nested(ChallengeOut))


class CompletionOut(Schema):
    id = Integer()
    challenge_id = Integer()
    member_id = Integer()
    completed_at = DateTime()
    bonus_transaction_id = Integer(allow_none=True)
    badge = String(allow_none=True)
    revoked_at = DateTime(allow_none=True)


class CompletionList(Schema):
    data = List(Nested(CompletionOut))


class ChallengeProgressOut(Schema):
    challenge = Nested(ChallengeOut)
    progress = DecimalOut(places=2, metadata={"description": "Towards the next completion"})
    target = DecimalOut(places=2)
    completions = Integer()
    completed = JsonBoolean(metadata={"description": "A once-only challenge the member already completed"})
    last_completed_at = DateTime(allow_none=True)
    text = String(metadata={"description": "The card's line, in the member's language"})


class ChallengeProgressList(Schema):
    data = List(Nested(ChallengeProgressOut))
    badges = List(String())


class LimitQuery(Schema):
    limit = Integer(load_default=50, validate=Range(min=1, max=200))


class LeaderboardRowOut(Schema):
    rank = Integer(metadata={"description": "Ties share a rank: 1, 2, 2, 4"})
    display_name = String()
    points = Integer(metadata={"description": "Points earned this calendar month (program's time zone)"})


class LeaderboardOut(Schema):
    program_id = Integer()
    month = String(metadata={"description": "YYYY-MM on the program's calendar"})
    data = List(Nested(LeaderboardRowOut))


class LeaderboardOptIn(Schema):
    opt_in = JsonBoolean(required=True)
    display_name = String(validate=Length(1, MAX_DISPLAY_NAME), allow_none=True, metadata={
        "description": "Required to opt in; never the member's name or email"})


class LeaderboardMemberOut(Schema):
    opt_in = JsonBoolean()
    display_name = String(allow_none=True)
    rank = Integer(allow_none=True, metadata={"description": "This month's rank; null without points this month"})
    points = Integer(allow_none=True)
