"""Challenges and the leaderboard: each program's challenges with their completions (add one, retire one) and the
month's top of the leaderboard. Saves go through the domain functions behind the merchant API
(`/api/v1/programs/{id}/challenges`), checked by its schema."""

from __future__ import annotations

from flask import abort, g, request, url_for
from sqlalchemy import select

from app.api.challenge_schemas import ChallengeIn
from app.dashboard import bp
from app.dashboard.forms import load, number, save
from app.dashboard.rendering import locale, render
from app.dashboard.sessions import owner_only, signed_in
from app.domain import challenges, leaderboard, programs
from app.domain.earnrules import plain
from app.domain.errors import DomainError
from app.models import Program, utcnow
from app.pages.catalogue import t
from app.services import db_session

LEADERBOARD_ROWS = 10


@bp.get("/challenges")
@signed_in
def challenges_page():
    session, now = db_session(), utcnow()
    found = session.scalars(select(Program).where(Program.merchant_id == g.user.merchant_id)
                            .order_by(Program.id)).all()
    sections = []
    for program in found:
        listed = challenges.program_challenges(session, program.id)
        sections.append({"program": program, "challenges": listed,
                         "completions": challenges.completion_counts(session, [c.id for c in listed]),
                         "leaderboard": leaderboard.standings(session, program, now, LEADERBOARD_ROWS)})
    return render("dashboard/challenges.html", sections=sections, goals=challenges.GOALS,
                  windows=challenges.WINDOWS, plain=plain)


@bp.post("/programs/<int:program_id>/challenges")
@signed_in
@owner_only
def create_challenge(program_id: int):
    try:
        program = programs.get_program(db_session(), g.user.merchant_id, program_id)
    except DomainError:
        abort(404)
    form = request.form
    fields = {"name": form.get("name", "").strip(), "goal": form.get("goal", ""),
              "target": form.get("target", "").strip(), "window": form.get("window", ""),
              "window_days": number(form.get("window_days")) or None,
              "category": form.get("category", "").strip() or None,
              "reward_points": number(form.get("reward_points")) or 0,
              "badge": form.get("badge", "").strip() or None, "repeatable": form.get("repeatable") == "on"}

    def change():
        challenges.create_challenge(db_session(), program, load(ChallengeIn(), fields), utcnow())
    return save(change, t("dash.challenges.saved", locale()), url_for("dashboard.challenges_page"))


@bp.post("/challenges/<int:challenge_id>/retire")
@signed_in
@owner_only
def retire_challenge(challenge_id: int):
    try:
        challenge = challenges.get_challenge(db_session(), g.user.merchant_id, challenge_id)
    except DomainError:
        abort(404)
    return save(lambda: challenges.retire_challenge(db_session(), challenge, utcnow()),
                t("dash.challenges.retired", locale()), url_for("dashboard.challenges_page"))
