"""The monthly leaderboard: opted-in members only, under display names only, by points earned this calendar month on
the program's calendar; ties share a rank in a fixed order."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
import time_machine

from app.domain import leaderboard
from app.models import Member
from app.services import db_session
from tests.app.test_challenges import _back_fields
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program

UTC = timezone.utc


def _shop(app, client, **fields):
    _, key = make_merchant(app)
    return key, make_program(client, key, **fields)


def opt_in(client, key, member_id, display_name: str | None = None, opt: bool = True):
    return client.put(f"/api/v1/members/{member_id}/leaderboard", json={"opt_in": opt, "display_name": display_name},
                      headers=auth(key, str(uuid.uuid4())))


def board(client, key, program_id, limit: int | None = None) -> list[tuple]:
    query = f"?limit={limit}" if limit else ""
    response = client.get(f"/api/v1/programs/{program_id}/leaderboard{query}", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return [(row["rank"], row["display_name"], row["points"]) for row in response.get_json()["data"]]


def _player(client, key, program_id, display_name, points, **fields):
    member = make_member(client, key, program_id, points=points, **fields)
    assert opt_in(client, key, member["id"], display_name).status_code == 200
    return member


def test_ties_share_a_rank_and_the_next_rank_skips(app, client):
    key, program = _shop(app, client)
    players = {name: _player(client, key, program["id"], name, points)
               for name, points in (("Zed", 50), ("Kiwi", 100), ("Amy", 50), ("Bo", 20))}
    expected = [(1, "Kiwi", 100), (2, "Amy", 50), (2, "Zed", 50), (4, "Bo", 20)]
    assert board(client, key, program["id"]) == expected
    for rank, name, points in expected:  # each member's own place, as their card and their opt-in answer show it
        mine = opt_in(client, key, players[name]["id"], name).get_json()
        assert (mine["rank"], mine["display_name"], mine["points"]) == (rank, name, points)
    assert board(client, key, program["id"]) == expected  # the same order on every read
    assert board(client, key, program["id"], limit=2) == expected[:2]  # a limit cuts the list, not the ranks


def test_only_members_who_opted_in_are_listed_under_their_display_name(app, client):
    key, program = _shop(app, client)
    shy = make_member(client, key, program["id"], points=500, name="Shy Tanaka", email="shy@example.com")
    player = _player(client, key, program["id"], "Latte Lord", 30, name="Mina Park", email="mina@example.com")
    response = client.get(f"/api/v1/programs/{program['id']}/leaderboard", headers=auth(key))
    text = response.get_data(as_text=True)
    assert board(client, key, program["id"]) == [(1, "Latte Lord", 30)]
    assert not any(secret in text for secret in ("Shy Tanaka", "Mina Park", "mina@example.com", "shy@"))
    left = opt_in(client, key, player["id"], opt=False).get_json()
    assert left == {"opt_in": False, "display_name": None, "rank": None, "points": None}
    assert board(client, key, program["id"]) == []
    assert client.get(f"/api/v1/members/{shy['id']}", headers=auth(key)).get_json()["leaderboard"] == \
        {"opt_in": False, "display_name": None}


@pytest.mark.parametrize("display_name", [None, "Mina Park", "MINA PARK", "mina@example.com", "me@home",
                                          "090-1234-5678", "+819012345678"])
def test_joining_needs_a_display_name_that_is_not_the_members_name_email_or_phone(app, client, display_name):
    key, program = _shop(app, client)
    member = make_member(client, key, program["id"], name="Mina Park", email="mina@example.com",
                         phone="+819012345678")
    problem = assert_problem(opt_in(client, key, member["id"], display_name), 422)
    assert "display_name" in problem["errors"]


def test_points_count_from_midnight_on_the_1st_in_the_programs_time_zone(app, client):
    """31 Jan 15:30 UTC is already 1 Feb in Tokyo: only that earn counts for Tokyo's February."""
    scores = {}
    for zone in ("Asia/Tokyo", "UTC"):
        key, program = _shop(app, client, timezone=zone)
        member = _player(client, key, program["id"], "Mochi", 0)
        with time_machine.travel(datetime(2027, 1, 31, 14, tzinfo=UTC), tick=False):
            earn(client, key, member["id"], points=40)
        with time_machine.travel(datetime(2027, 1, 31, 15, 30, tzinfo=UTC), tick=False):
            earn(client, key, member["id"], points=7)
            scores[zone] = board(client, key, program["id"])
    assert scores == {"Asia/Tokyo": [(1, "Mochi", 7)], "UTC": [(1, "Mochi", 47)]}


def test_a_refund_lowers_the_score_and_spending_does_not(app, client):
    key, program = _shop(app, client)
    member = _player(client, key, program["id"], "Bean", 100)
    purchase = earn(client, key, member["id"], points=60).get_json()["transaction"]
    client.post(f"/api/v1/transactions/{purchase['id']}/reverse", json={"points": 10},
                headers=auth(key, str(uuid.uuid4())))
    client.post(f"/api/v1/members/{member['id']}/redeem", json={"points": 50}, headers=auth(key, str(uuid.uuid4())))
    assert board(client, key, program["id"]) == [(1, "Bean", 150)]


def test_an_opted_in_member_sees_their_rank_on_the_card(app, client):
    key, program = _shop(app, client)
    _player(client, key, program["id"], "Kiwi", 100)
    member = _player(client, key, program["id"], "Amy", 50, locale="ja")
    assert _back_fields(client, member)["notice_leaderboard_rank"]["value"] == "2位・50ポイント"
    opt_in(client, key, member["id"], opt=False)
    assert "notice_leaderboard_rank" not in _back_fields(client, member)


def test_the_card_ranks_its_own_points_at_once_and_others_earns_within_a_minute(app, client, monkeypatch):
    """A card is rebuilt by its own member's changes only, so it shows others as they were at some moment: here,
    as this process last ranked the program, at most BOARD_SECONDS ago."""
    key, program = _shop(app, client)
    kiwi = _player(client, key, program["id"], "Kiwi", 100)
    amy = _player(client, key, program["id"], "Amy", 50, locale="ja")
    assert _back_fields(client, amy)["notice_leaderboard_rank"]["value"] == "2位・50ポイント"
    earn(client, key, amy["id"], points=70)
    assert _back_fields(client, amy)["notice_leaderboard_rank"]["value"] == "1位・120ポイント"  # her own: at once
    earn(client, key, kiwi["id"], points=100)
    assert _back_fields(client, amy)["notice_leaderboard_rank"]["value"] == "1位・120ポイント"  # Kiwi: not yet
    monkeypatch.setattr(leaderboard, "BOARD_SECONDS", 0.0)  # ...the board is older than that now
    assert _back_fields(client, amy)["notice_leaderboard_rank"]["value"] == "2位・120ポイント"
    assert board(client, key, program["id"]) == [(1, "Kiwi", 200), (2, "Amy", 120)]  # the board itself: exact


def test_a_deleted_member_stops_counting_ahead_on_other_cards_at_once(app, client):
    key, program = _shop(app, client)
    kiwi = _player(client, key, program["id"], "Kiwi", 100)
    amy = _player(client, key, program["id"], "Amy", 50, locale="ja")
    assert _back_fields(client, amy)["notice_leaderboard_rank"]["value"] == "2位・50ポイント"
    assert client.delete(f"/api/v1/members/{kiwi['id']}", headers=auth(key, str(uuid.uuid4()))).status_code in \
        (200, 204)
    earn(client, key, amy["id"], points=1)
    assert _back_fields(client, amy)["notice_leaderboard_rank"]["value"] == "1位・51ポイント"


def test_another_merchants_leaderboard_is_not_found(app, client):
    key, program = _shop(app, client)
    _, other_key = make_merchant(app)
    assert_problem(client.get(f"/api/v1/programs/{program['id']}/leaderboard", headers=auth(other_key)), 404)


def test_a_deleted_member_leaves_the_board_and_their_display_name_is_forgotten(app, client):
    key, program = _shop(app, client)
    member = _player(client, key, program["id"], "Latte Lord", 30)
    assert client.delete(f"/api/v1/members/{member['id']}", headers=auth(key, str(uuid.uuid4()))).status_code in \
        (200, 204)
    assert board(client, key, program["id"]) == []
    with app.app_context():
        assert db_session().get(Member, member["id"]).leaderboard_name is None
