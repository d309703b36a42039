"""Surprise rewards: a sample drawn reproducibly from a seed, credited through the ledger, announced on the card."""

from __future__ import annotations

import random

from sqlalchemy import select

from app.card_notices import card_notices
from app.domain.surprises import draw
from app.models import LedgerEntry, Member
from app.services import services
from tests.factories import assert_problem, auth, make_member, make_merchant, make_program, make_reward


def setup(app, client, n: int = 10):
    _, key = make_merchant(app)
    program = make_program(client, key)
    members = [make_member(client, key, program["id"], name=f"M{index}")["id"] for index in range(n)]
    segment = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(key), json={
        "name": "Everyone", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 0}]}}).get_json()
    return key, program, members, segment


def surprise(client, key, program, **body):
    return client.post(f"/api/v1/programs/{program['id']}/surprises", json=body, headers=auth(key))


def test_the_draw_depends_only_on_the_seed_and_the_eligible_set():
    eligible = list(range(1, 1001))
    shuffled = random.Random(7).sample(eligible, len(eligible))
    assert draw("audit-2026", eligible, 10) == draw("audit-2026", shuffled, 10)
    assert draw("audit-2026", eligible, 10) != draw("audit-2027", eligible, 10)
    assert draw("x", [3, 1, 2], 10) == [1, 2, 3]  # more asked than eligible: all of them


def test_same_seed_same_members_and_each_winner_is_credited(app, client):
    key, program, members, segment = setup(app, client)
    first = surprise(client, key, program, segment_id=segment["id"], sample_size=3, points=50, seed="spring")
    assert first.status_code == 201
    body = first.get_json()
    assert body["seed"] == "spring" and body["eligible_count"] == 10 and len(body["member_ids"]) == 3
    assert body["member_ids"] == draw("spring", members, 3)

    for member_id in members:
        member = client.get(f"/api/v1/members/{member_id}", headers=auth(key)).get_json()
        assert member["points_balance"] == (50 if member_id in body["member_ids"] else 0)
    with app.app_context():
        session = services(app).sessions()
        entry = session.scalar(select(LedgerEntry).where(LedgerEntry.member_id == body["member_ids"][0]))
        assert (entry.kind, entry.reason, entry.rule) == ("bonus", f"Surprise #{body['id']}", f"surprise:{body['id']}")
        shown = card_notices(session, session.get(Member, body["member_ids"][0]))
        session.close()
    assert [(notice.label, notice.text, notice.change_message) for notice in shown] == \
        [("Surprise!", "50 bonus points, just for you", "%@")]

    again = surprise(client, key, program, segment_id=segment["id"], sample_size=3, points=50, seed="spring")
    assert again.get_json()["member_ids"] == body["member_ids"]  # the eligible set did not change


def test_without_a_seed_one_is_made_and_returned(app, client):
    key, program, members, segment = setup(app, client, n=4)
    body = surprise(client, key, program, segment_id=segment["id"], sample_size=2, points=5).get_json()
    assert len(body["seed"]) == 32 and body["member_ids"] == draw(body["seed"], members, 2)
    assert client.get(f"/api/v1/surprises/{body['id']}", headers=auth(key)).get_json() == body


def test_a_reward_gives_its_points_cost(app, client):
    key, program, members, segment = setup(app, client, n=2)
    reward = make_reward(client, key, program["id"], name="Free muffin", points_cost=120)
    body = surprise(client, key, program, segment_id=segment["id"], sample_size=1, reward_id=reward["id"],
                    seed="m").get_json()
    assert body["points"] == 120
    member = client.get(f"/api/v1/members/{body['member_ids'][0]}", headers=auth(key)).get_json()
    assert member["points_balance"] == 120


def test_bad_surprises_are_refused_naming_the_field(app, client):
    key, program, _, segment = setup(app, client, n=1)
    both = surprise(client, key, program, segment_id=segment["id"], sample_size=1, points=5, reward_id=1)
    assert "points" in assert_problem(both, 422)["errors"]
    assert "sample_size" in assert_problem(surprise(client, key, program, segment_id=segment["id"], sample_size=0,
                                                    points=5), 422)["errors"]
    _, other = make_merchant(app)
    other_program = make_program(client, other)
    refused = assert_problem(surprise(client, other, other_program, segment_id=segment["id"], sample_size=1,
                                      points=5), 422)
    assert "segment_id" in refused["errors"]
