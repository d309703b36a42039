"""Challenges: goals over rolling days, the calendar month (the program's) or their whole run; points and badges
on completion, once or again and again; refunds recount the progress; the card shows where the member stands."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import select

from app.domain.challenges import show_challenges
from app.domain.notifications import notice_for
from app.models import OutboxEvent, Program
from app.services import db_session
from tests.app.test_statements import statements, write_statements
from tests.app.test_webhooks_api import create as create_webhook
from tests.app.test_webhooks_api import webhook_events
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program

UTC = timezone.utc
T0 = datetime(2027, 3, 1, 12, tzinfo=UTC)
THREE_VISITS = {"name": "Regular", "goal": "visits", "target": 3, "window": "days", "window_days": 30,
                "reward_points": 100, "badge": "Regular"}


def _shop(app, client, **fields):
    merchant_id, key = make_merchant(app)
    return merchant_id, key, make_program(client, key, **fields)


def add_challenge(client, key, program_id, **fields) -> dict:
    response = client.post(f"/api/v1/programs/{program_id}/challenges", json={**THREE_VISITS, **fields},
                           headers=auth(key, str(uuid.uuid4())))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _member(client, key, member_id) -> dict:
    return client.get(f"/api/v1/members/{member_id}", headers=auth(key)).get_json()


def _progress(client, key, member_id) -> dict:
    response = client.get(f"/api/v1/members/{member_id}/challenges", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return {item["challenge"]["name"]: item for item in response.get_json()["data"]}


def _buy(client, key, member_id, amount="10.00", **body):
    response = earn(client, key, member_id, **({"amount": amount} if "items" not in body else {}), **body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _back_fields(client, member) -> dict:
    archive = zipfile.ZipFile(io.BytesIO(client.get(member["apple_pass_url"].replace(
        "https://punchpass.test", "")).data))
    fields = json.loads(archive.read("pass.json"))["storeCard"]["backFields"]
    return {field["key"]: field for field in fields}


def test_three_visits_in_30_days_give_100_points_and_a_badge(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"])
    member = make_member(client, key, program["id"])
    _buy(client, key, member["id"])
    _buy(client, key, member["id"])
    assert _progress(client, key, member["id"])["Regular"]["progress"] == "2.00"
    body = _buy(client, key, member["id"])
    assert body["member"]["points_balance"] == 3 * 10 + 100
    assert body["member"]["badges"] == ["Regular"]
    statement = client.get(f"/api/v1/members/{member['id']}/transactions", headers=auth(key)).get_json()["data"]
    assert (statement[0]["kind"], statement[0]["points"], statement[0]["reason"]) == \
        ("bonus", 100, "Challenge: Regular")
    challenge = client.get(f"/api/v1/programs/{program['id']}/challenges", headers=auth(key)).get_json()["data"][0]
    assert challenge["completions"] == 1


def test_a_visit_exactly_30_days_old_still_counts_a_second_older_does_not(app, client):
    _, key, program = _shop(app, client)
    with time_machine.travel(T0 - timedelta(days=1), tick=False):
        add_challenge(client, key, program["id"])
    on_time, late = (make_member(client, key, program["id"]) for _ in range(2))
    for member, last_visit in ((on_time, T0 + timedelta(days=30)), (late, T0 + timedelta(days=30, seconds=1))):
        for moment in (T0, T0 + timedelta(days=10), last_visit):
            with time_machine.travel(moment, tick=False):
                body = _buy(client, key, member["id"])
    assert _member(client, key, on_time["id"])["badges"] == ["Regular"]
    assert body["member"]["badges"] == [] and body["member"]["points_balance"] == 30
    with time_machine.travel(T0 + timedelta(days=30, seconds=1), tick=False):
        assert _progress(client, key, late["id"])["Regular"]["progress"] == "2.00"


@pytest.mark.parametrize("zone, completes", [("UTC", True), ("Asia/Tokyo", False)])
def test_this_months_spend_ends_at_midnight_in_the_programs_time_zone(app, client, zone, completes):
    """31 Jan 15:30 UTC is still January in UTC but already 1 Feb 00:30 in Tokyo."""
    _, key, program = _shop(app, client, timezone=zone)
    with time_machine.travel(datetime(2027, 1, 1, tzinfo=UTC), tick=False):
        add_challenge(client, key, program["id"], name="Big spender", goal="spend", target="100.00",
                      window="month", window_days=None, badge=None)
    member = make_member(client, key, program["id"])
    with time_machine.travel(datetime(2027, 1, 31, 14, tzinfo=UTC), tick=False):
        _buy(client, key, member["id"], amount="60.00")
    with time_machine.travel(datetime(2027, 1, 31, 15, 30, tzinfo=UTC), tick=False):
        body = _buy(client, key, member["id"], amount="50.00")
        assert body["member"]["points_balance"] == 110 + (100 if completes else 0)
        assert _progress(client, key, member["id"])["Big spender"]["progress"] == ("0.00" if completes else "50.00")


def test_a_category_goal_counts_the_items_of_that_category(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"], name="Pastry fan", goal="category", category="pastry", target=5,
                  window="challenge", window_days=None)
    member = make_member(client, key, program["id"])
    _buy(client, key, member["id"], items=[{"category": "pastry", "amount": "3.00", "quantity": 2},
                                           {"category": "coffee", "amount": "4.00", "quantity": 3}])
    _buy(client, key, member["id"], amount="20.00")  # no items: nothing of the category
    assert _progress(client, key, member["id"])["Pastry fan"]["progress"] == "2.00"
    body = _buy(client, key, member["id"], items=[{"category": "pastry", "amount": "3.00", "quantity": 3}])
    assert body["member"]["badges"] == ["Regular"]


def test_a_once_only_challenge_completes_once_a_repeatable_one_again_from_zero(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"], name="Once", badge="Once", reward_points=50)
    add_challenge(client, key, program["id"], name="Again", badge="Again", reward_points=10, repeatable=True)
    member = make_member(client, key, program["id"])
    for _ in range(7):
        body = _buy(client, key, member["id"], amount="1.00")
    assert body["member"]["points_balance"] == 7 + 50 + 2 * 10
    assert body["member"]["badges"] == ["Once", "Again"]  # a badge is listed once, however often it is won
    progress = _progress(client, key, member["id"])
    assert (progress["Once"]["completed"], progress["Once"]["completions"], progress["Once"]["progress"]) == \
        (True, 1, "0.00")
    assert (progress["Again"]["completed"], progress["Again"]["completions"], progress["Again"]["progress"]) == \
        (False, 2, "1.00")


def test_a_refund_withdraws_the_visit_but_a_granted_reward_stays(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"])
    member = make_member(client, key, program["id"])
    first = _buy(client, key, member["id"])["transaction"]
    _buy(client, key, member["id"])
    _reverse(client, key, first["id"])
    assert _progress(client, key, member["id"])["Regular"]["progress"] == "1.00"
    _buy(client, key, member["id"])
    completing = _buy(client, key, member["id"])["transaction"]
    assert _member(client, key, member["id"])["badges"] == ["Regular"]
    body = _reverse(client, key, completing["id"])
    assert body["member"]["points_balance"] == 3 * 10 + 100 - 10 and body["member"]["badges"] == ["Regular"]


def test_a_partial_refund_scales_a_spend_contribution_down(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"], name="Spend", goal="spend", target="100.00")
    member = make_member(client, key, program["id"])
    purchase = _buy(client, key, member["id"], amount="80.00")["transaction"]
    _reverse(client, key, purchase["id"], points=20)
    assert _progress(client, key, member["id"])["Spend"]["progress"] == "60.00"
    assert _buy(client, key, member["id"], amount="30.00")["member"]["badges"] == []


def test_a_clawback_challenge_takes_back_its_points_and_badge_when_the_completing_purchase_is_refunded(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"], clawback=True)
    member = make_member(client, key, program["id"])
    _buy(client, key, member["id"])
    _buy(client, key, member["id"])
    completing = _buy(client, key, member["id"])["transaction"]
    body = _reverse(client, key, completing["id"])
    assert body["member"]["points_balance"] == 20 and body["member"]["badges"] == []
    assert _progress(client, key, member["id"])["Regular"]["progress"] == "2.00"  # the two others count again
    assert _buy(client, key, member["id"])["member"]["points_balance"] == 30 + 100


def _reverse(client, key, transaction_id, **body):
    response = client.post(f"/api/v1/transactions/{transaction_id}/reverse", json=body,
                           headers=auth(key, str(uuid.uuid4())))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_program_without_a_challenge_adds_no_statement_to_an_earn(app, client):
    _, key, program = _shop(app, client)
    member = make_member(client, key, program["id"], points=10)
    with statements(app) as seen:
        assert earn(client, key, member["id"], points=10).status_code == 201
    assert len(seen) <= write_statements(app) and not any("challenge" in statement for statement in seen), seen


@pytest.mark.parametrize("moment", [T0 - timedelta(seconds=1), T0 + timedelta(days=7)])
def test_before_its_first_challenge_starts_and_after_the_last_ends_an_earn_reads_no_challenge(app, client, moment):
    _, key, program = _shop(app, client)
    with time_machine.travel(T0 - timedelta(days=1), tick=False):
        add_challenge(client, key, program["id"], starts_at=T0.isoformat(),
                      ends_at=(T0 + timedelta(days=7)).isoformat())  # ends_at is exclusive
        member = make_member(client, key, program["id"])
    with time_machine.travel(moment, tick=False), statements(app) as seen:
        assert earn(client, key, member["id"], points=10).status_code == 201
    assert not any("challenge" in statement for statement in seen), seen
    with time_machine.travel(T0, tick=False), statements(app) as seen:
        assert earn(client, key, member["id"], points=10).status_code == 201
    assert any("challenge_progress" in statement for statement in seen)


def test_a_challenge_counts_only_from_its_start(app, client):
    _, key, program = _shop(app, client)
    with time_machine.travel(T0, tick=False):
        add_challenge(client, key, program["id"], starts_at=(T0 + timedelta(days=1)).isoformat(),
                      window="challenge", window_days=None)
        member = make_member(client, key, program["id"])
        _buy(client, key, member["id"])
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        _buy(client, key, member["id"])
        assert _progress(client, key, member["id"])["Regular"]["progress"] == "1.00"


def test_completion_tells_webhooks_challenge_completed(app, client):
    merchant_id, key, program = _shop(app, client)
    assert create_webhook(client, key, events=["challenge.completed"]).status_code == 201
    add_challenge(client, key, program["id"], target=1)
    member = make_member(client, key, program["id"])
    _buy(client, key, member["id"])
    assert webhook_events(app, merchant_id) == ["challenge.completed"]


def test_the_card_shows_progress_in_the_members_language_and_announces_a_completion(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"])
    english = make_member(client, key, program["id"])
    japanese = make_member(client, key, program["id"], locale="ja")
    korean = make_member(client, key, program["id"], locale="ko")
    for member in (english, japanese, korean):
        _buy(client, key, member["id"])
        _buy(client, key, member["id"])
    challenge_id = _progress(client, key, english["id"])["Regular"]["challenge"]["id"]
    line = f"notice_challenge_{challenge_id}"
    assert _back_fields(client, english)[line]["value"] == "Visit 3 times in 30 days: 2/3"
    assert _back_fields(client, japanese)[line]["value"] == "30日以内に3回ご来店：2/3"
    assert _back_fields(client, korean)[line]["value"] == "30일 안에 3회 방문: 2/3"
    _buy(client, key, english["id"])
    fields = _back_fields(client, english)
    assert fields[line]["value"] == "Visit 3 times in 30 days: completed"
    assert fields["notice_challenge_completed"]["value"] == "Regular: +100 points, badge “Regular”"
    assert fields["notice_challenge_completed"]["changeMessage"] == "%@"
    assert fields["notice_badges"]["value"] == "Regular"
    _buy(client, key, japanese["id"])
    assert _back_fields(client, japanese)["notice_challenge_completed"]["value"] == \
        "Regular：100ポイント獲得、バッジ「Regular」獲得"


def test_bad_challenges_are_422_naming_the_field(app, client):
    _, key, program = _shop(app, client)
    url = f"/api/v1/programs/{program['id']}/challenges"
    for body, field in (({"goal": "category"}, "category"), ({"window_days": None}, "window_days"),
                        ({"reward_points": 0, "badge": None}, "reward_points"), ({"goal": "laps"}, "goal"),
                        ({"target": "2.50"}, "target"),
                        ({"starts_at": "2027-02-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"}, "ends_at")):
        problem = assert_problem(client.post(url, json={**THREE_VISITS, **body}, headers=auth(key)), 422)
        assert field in problem["errors"], (body, problem)


def test_another_merchants_challenge_is_not_found(app, client):
    _, key, program = _shop(app, client)
    challenge = add_challenge(client, key, program["id"])
    _, other_key = make_merchant(app)
    assert_problem(client.get(f"/api/v1/challenges/{challenge['id']}", headers=auth(other_key)), 404)
    assert_problem(client.patch(f"/api/v1/challenges/{challenge['id']}", json={"name": "Mine"},
                                headers=auth(other_key)), 404)
    assert_problem(client.get(f"/api/v1/programs/{program['id']}/challenges", headers=auth(other_key)), 404)


def test_edit_and_retire(app, client):
    _, key, program = _shop(app, client)
    challenge = add_challenge(client, key, program["id"])
    member = make_member(client, key, program["id"])
    _buy(client, key, member["id"])
    patched = client.patch(f"/api/v1/challenges/{challenge['id']}", json={"target": 1},
                           headers=auth(key)).get_json()
    assert patched["target"] == "1.00"
    assert _buy(client, key, member["id"])["member"]["badges"] == ["Regular"]  # the earlier visit still counts
    assert client.delete(f"/api/v1/challenges/{challenge['id']}", headers=auth(key)).status_code == 204
    assert _progress(client, key, member["id"]) == {}
    assert _member(client, key, member["id"])["badges"] == ["Regular"]  # what it gave stays
    completions = client.get(f"/api/v1/challenges/{challenge['id']}/completions", headers=auth(key)).get_json()
    assert [c["member_id"] for c in completions["data"]] == [member["id"]]


def test_a_completion_reads_as_a_notification_in_the_members_language():
    data = {"challenge": {"id": 1, "name": "Regular", "reward_points": 100}}
    assert notice_for("challenge.completed", data, "en") == \
        ("Challenge completed!", "You completed “Regular”. Your reward is on your card.")
    assert notice_for("challenge.completed", data, "ja").body == \
        "「Regular」を達成しました。特典はカードでご確認ください。"
    assert notice_for("challenge.completed", data, "ko").title == "챌린지 달성!"


def test_a_completion_reaches_the_members_app_through_fcm(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"], target=1)
    member = make_member(client, key, program["id"])
    response = client.post(f"/api/v1/members/{member['id']}/devices", json={"token": "fcm-token-challenge-0001",
                                                                           "platform": "android"},
                           headers=auth(key, str(uuid.uuid4())))
    assert response.status_code == 201, response.get_json()
    _buy(client, key, member["id"])
    with app.app_context():
        kinds = [row.payload["event"]["type"] for row in db_session().scalars(
            select(OutboxEvent).where(OutboxEvent.kind == "fcm", OutboxEvent.member_id == member["id"]))]
    assert kinds == ["challenge.completed"]


# a running challenge adds to an earn: the live challenges; the member's completions of once-only ones; the
# INSERT of the earn's progress; the progress sums (one query for every challenge)
CHALLENGE_STATEMENTS = 4


def test_an_earn_in_a_program_with_challenges_sends_four_statements_more(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"])
    add_challenge(client, key, program["id"], name="Spend", goal="spend", target="1000.00", window="month")
    member = make_member(client, key, program["id"], points=10)
    with statements(app) as seen:
        assert earn(client, key, member["id"], amount="5.00").status_code == 201
    assert len(seen) <= write_statements(app) + CHALLENGE_STATEMENTS, seen


def test_a_challenges_goal_cannot_change_but_its_target_can(app, client):
    _, key, program = _shop(app, client)
    challenge = add_challenge(client, key, program["id"])
    url = f"/api/v1/challenges/{challenge['id']}"
    assert "goal" in assert_problem(client.patch(url, json={"goal": "spend"}, headers=auth(key)), 422)["errors"]
    assert client.patch(url, json={"goal": "visits", "target": 5}, headers=auth(key)).get_json()["target"] == "5.00"


def test_a_stamp_is_a_visit(app, client):
    _, key, program = _shop(app, client, type="stamps", stamps_required=10)
    add_challenge(client, key, program["id"], reward_points=0, badge="Regular", target=2)
    member = make_member(client, key, program["id"])
    earn(client, key, member["id"], stamps=1)
    assert earn(client, key, member["id"], stamps=1).get_json()["member"]["badges"] == ["Regular"]


def test_a_clawback_after_the_bonus_was_reversed_by_hand_takes_nothing_twice(app, client):
    _, key, program = _shop(app, client)
    add_challenge(client, key, program["id"], clawback=True, target=1)
    member = make_member(client, key, program["id"])
    purchase = _buy(client, key, member["id"])["transaction"]
    statement = client.get(f"/api/v1/members/{member['id']}/transactions", headers=auth(key)).get_json()["data"]
    _reverse(client, key, statement[0]["id"])  # the bonus
    body = _reverse(client, key, purchase["id"])
    assert body["member"]["points_balance"] == 0 and body["member"]["badges"] == []


def test_cards_are_reissued_when_a_challenge_starts_and_ends_by_the_clock(app, client):
    _, key, program = _shop(app, client)
    with time_machine.travel(T0 - timedelta(days=1), tick=False):
        add_challenge(client, key, program["id"], starts_at=T0.isoformat(),
                      ends_at=(T0 + timedelta(days=7)).isoformat())

    def show(as_of) -> int:
        """Run the job (over every program of the test database) and read this program's design version."""
        with app.app_context():
            session = db_session()
            show_challenges(session, as_of)
            session.commit()
            return session.get(Program, program["id"]).design_version

    version = show(T0 - timedelta(seconds=1))
    assert show(T0 - timedelta(seconds=1)) == version  # nothing started yet: nothing to re-issue
    assert show(T0) == version + 1  # started: every card shows it
    assert show(T0 + timedelta(hours=1)) == version + 1
    assert show(T0 + timedelta(days=7)) == version + 2  # over: the line leaves the cards
    with app.app_context():
        assert db_session().get(Program, program["id"]).challenges_from is None  # out of the next runs
