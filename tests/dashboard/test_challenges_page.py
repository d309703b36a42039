"""The dashboard's challenges page: the owner adds and retires challenges through the API's rules, sees how many
members completed each, and the month's leaderboard under display names only."""

from __future__ import annotations

import uuid

from app.models import Challenge
from app.services import db_session
from tests.app.test_leaderboard import opt_in
from tests.dashboard.helpers import signed_in_owner
from tests.factories import earn, make_member, make_merchant, make_program

PAGE = "/dashboard/challenges"
FORM = {"name": "Regular", "goal": "visits", "target": "3", "window": "days", "window_days": "30",
        "reward_points": "100", "badge": "Regular"}


def _shop(app):
    client = app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, name="Kissa Hoshi")
    owner = signed_in_owner(app, merchant_id, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    return client, admin, program, merchant_id, owner


def test_the_owner_adds_a_challenge_and_sees_its_completions_and_the_leaderboard(app):
    client, admin, program, _, owner = _shop(app)
    assert owner.post(f"/dashboard/programs/{program['id']}/challenges", FORM, page=PAGE).status_code == 303
    member = make_member(client, admin, program["id"], name="Mina Park")
    assert opt_in(client, admin, member["id"], "Latte Lord").status_code == 200
    for _ in range(3):
        earn(client, admin, member["id"], amount="5.00")
    page = owner.get(PAGE).get_data(as_text=True)
    assert "Regular" in page and "<td>1</td>" in page  # one completion
    assert "<td>Latte Lord</td><td>115</td>" in page and "Mina Park" not in page


def test_a_bad_challenge_is_refused_with_the_apis_message(app):
    _, _, program, _, owner = _shop(app)
    owner.post(f"/dashboard/programs/{program['id']}/challenges", {**FORM, "window_days": ""}, page=PAGE)
    assert "window_days" in owner.get(PAGE).get_data(as_text=True)


def test_staff_cannot_add_and_nobody_retires_another_merchants_challenge(app):
    _, _, program, merchant_id, owner = _shop(app)
    staff = signed_in_owner(app, merchant_id, f"staff-{uuid.uuid4().hex[:8]}@example.com", role="staff")
    assert staff.get(PAGE).status_code == 200
    assert staff.post(f"/dashboard/programs/{program['id']}/challenges", FORM, page=PAGE).status_code == 403
    owner.post(f"/dashboard/programs/{program['id']}/challenges", FORM, page=PAGE)
    with app.app_context():
        challenge_id = db_session().query(Challenge.id).filter_by(program_id=program["id"]).scalar()
    other_id, _ = make_merchant(app, "Elsewhere")
    other = signed_in_owner(app, other_id, f"other-{uuid.uuid4().hex[:8]}@example.com")
    assert other.post(f"/dashboard/challenges/{challenge_id}/retire", {}, page=PAGE).status_code == 404
    assert "Regular" not in other.get(PAGE).get_data(as_text=True)
    assert owner.post(f"/dashboard/challenges/{challenge_id}/retire", {}, page=PAGE).status_code == 303
    assert "Regular</td>" not in owner.get(PAGE).get_data(as_text=True)
