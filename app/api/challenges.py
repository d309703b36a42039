"""Challenges (admin keys), a member's progress and badges, and the program's monthly leaderboard."""

from __future__ import annotations

from apiflask import APIBlueprint

from app.api.challenge_schemas import (
    ChallengeIn,
    ChallengeList,
    ChallengeOut,
    ChallengePatch,
    ChallengeProgressList,
    CompletionList,
    LeaderboardMemberOut,
    LeaderboardOptIn,
    LeaderboardOut,
    LimitQuery,
)
from app.api.idempotency import idempotent_write
from app.api.openapi import problems
from app.auth import ADMIN, POS, auth, current_caller
from app.challenge_cards import goal_text
from app.domain import challenges, leaderboard, ledger, members, programs
from app.domain.calendar import program_zone
from app.models import Challenge, ChallengeCompletion, utcnow
from app.services import db_session

bp = APIBlueprint("challenges", __name__, url_prefix="/api/v1", tag="Challenges")


def challenge_json(challenge: Challenge, completions: int) -> dict:
    return {**{name: getattr(challenge, name) for name in (
        "id", "program_id", "name", "goal", "target", "category", "window", "window_days", "reward_points", "badge",
        "repeatable", "clawback", "starts_at", "ends_at", "retired_at", "created_at")}, "completions": completions}


def _one(challenge: Challenge) -> dict:
    return challenge_json(challenge, challenges.completion_counts(db_session(), [challenge.id]).get(challenge.id, 0))


@bp.post("/programs/<int:program_id>/challenges")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(ChallengeIn, arg_name="data")
@bp.output(ChallengeOut, status_code=201)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def create_challenge(program_id, data):
    """A goal (visits, spend or items of a category) over a window, rewarded with bonus points and/or a badge.
    Every card of the program shows it from `starts_at`."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    return challenge_json(challenges.create_challenge(session, program, data, utcnow()), 0)


@bp.get("/programs/<int:program_id>/challenges")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(ChallengeList)
@bp.doc(responses=problems(401, 403, 404))
def list_challenges(program_id):
    """Every challenge not retired, oldest first, with its completion count."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    found = challenges.program_challenges(session, program.id)
    counts = challenges.completion_counts(session, [c.id for c in found])
    return {"data": [challenge_json(c, counts.get(c.id, 0)) for c in found]}


@bp.get("/challenges/<int:challenge_id>")
@bp.auth_required(auth, roles=ADMIN)
@bp.output(ChallengeOut)
@bp.doc(responses=problems(401, 403, 404))
def get_challenge(challenge_id):
    return _one(challenges.get_challenge(db_session(), current_caller().merchant_id, challenge_id))


@bp.patch("/challenges/<int:challenge_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.input(ChallengePatch, arg_name="data")
@bp.output(ChallengeOut)
@bp.doc(responses=problems(400, 401, 403, 404, 413, 422))
def update_challenge(challenge_id, data):
    """Change any field; progress already made counts under the new rules; the cards update."""
    session = db_session()
    challenge = challenges.get_challenge(session, current_caller().merchant_id, challenge_id)
    return _one(challenges.update_challenge(session, challenge, data, utcnow()))


@bp.delete("/challenges/<int:challenge_id>")
@bp.auth_required(auth, roles=ADMIN)
@idempotent_write
@bp.output({}, status_code=204)
@bp.doc(responses=problems(400, 401, 403, 404))
def retire_challenge(challenge_id):
    """Retire: it stops counting and leaves the cards; completions, points and badges it gave stay."""
    session = db_session()
    challenges.retire_challenge(session, challenges.get_challenge(session, current_caller().merchant_id,
                                                                  challenge_id), utcnow())
    return ""


@bp.get("/challenges/<int:challenge_id>/completions")
@bp.auth_required(auth, roles=ADMIN)
@bp.input(LimitQuery, location="query", arg_name="query")
@bp.output(CompletionList)
@bp.doc(responses=problems(401, 403, 404, 422))
def list_completions(challenge_id, query):
    """Who completed it, newest first."""
    session = db_session()
    challenge = challenges.get_challenge(session, current_caller().merchant_id, challenge_id)
    return {"data": [completion_json(c) for c in challenges.completions_of(session, challenge, query["limit"])]}


def completion_json(completion: ChallengeCompletion) -> dict:
    return {"id": completion.id, "challenge_id": completion.challenge_id, "member_id": completion.member_id,
            "completed_at": completion.completed_at, "bonus_transaction_id": completion.bonus_entry_id,
            "badge": completion.badge, "revoked_at": completion.revoked_at}


@bp.get("/members/<int:member_id>/challenges")
@bp.auth_required(auth, roles=POS)
@bp.output(ChallengeProgressList)
@bp.doc(responses=problems(401, 404))
def member_challenges(member_id):
    """The member's progress in every running challenge, and their badges."""
    session = db_session()
    member = members.get_member(session, current_caller().merchant_id, member_id)
    now = utcnow()
    data = [{"challenge": challenge_json(item.challenge, item.completions), "progress": item.progress,
             "target": item.challenge.target, "completions": item.completions, "completed": item.done,
             "last_completed_at": item.last_completed_at,
             "text": goal_text(item.challenge, member.program.currency, member.locale)}
            for item in challenges.member_progress(session, member, now)]
    return {"data": data, "badges": list(member.badges or [])}


@bp.get("/programs/<int:program_id>/leaderboard")
@bp.auth_required(auth, roles=POS)
@bp.input(LimitQuery, location="query", arg_name="query")
@bp.output(LeaderboardOut)
@bp.doc(responses=problems(401, 404, 422))
def program_leaderboard(program_id, query):
    """Members who opted in, by points earned this calendar month in the program's time zone; display names
    only. Ties share a rank (1, 2, 2, 4), listed by display name."""
    session = db_session()
    program = programs.get_program(session, current_caller().merchant_id, program_id)
    now = utcnow()
    board = leaderboard.standings(session, program, now, query["limit"])
    return {"program_id": program.id, "month": now.astimezone(program_zone(program)).strftime("%Y-%m"),
            "data": [{"rank": s.rank, "display_name": s.display_name, "points": s.points} for s in board]}


@bp.put("/members/<int:member_id>/leaderboard")
@bp.auth_required(auth, roles=POS)
@idempotent_write
@bp.input(LeaderboardOptIn, arg_name="data")
@bp.output(LeaderboardMemberOut)
@bp.doc(responses=problems(400, 401, 404, 413, 422))
def set_leaderboard(member_id, data):
    """Opt in under a display name (never the member's name or email), or out (`opt_in: false`: the display
    name is forgotten). The card shows the member's rank while they are in."""
    session = db_session()
    member = ledger.get_member_for_update(session, current_caller().merchant_id, member_id)
    leaderboard.set_opt_in(session, member, data["opt_in"], data.get("display_name"))
    standing = leaderboard.rank_of(session, member, utcnow())
    return {"opt_in": member.leaderboard_opt_in, "display_name": member.leaderboard_name,
            "rank": standing.rank if standing else None, "points": standing.points if standing else None}
