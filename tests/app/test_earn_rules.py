"""Money becomes points by the program's earn rules, and the answer says which rules applied."""

from datetime import datetime, timezone

import time_machine

from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program

MONDAY = datetime(2026, 6, 1, 3, tzinfo=timezone.utc)  # Monday noon in Tokyo
SATURDAY_IN_TOKYO = datetime(2026, 6, 5, 16, tzinfo=timezone.utc)  # Friday in UTC, Saturday 01:00 in Tokyo


def _shop(app, client, **program_fields):
    _, key = make_merchant(app)
    program = make_program(client, key, **program_fields)
    return key, program, make_member(client, key, program["id"])


def test_rounding_mode_and_minimum_spend(app, client):
    key, _, member = _shop(app, client, points_per_unit="1.5", rounding="nearest",
                           earn_rules={"minimum_spend": "5.00"})
    small = earn(client, key, member["id"], amount="4.99").get_json()
    assert small["transaction"]["points"] == 0
    assert [rule["rule"] for rule in small["rules"]] == ["base_rate", "minimum_spend"]
    body = earn(client, key, member["id"], amount="9.00").get_json()  # 13.5 rounds to 14
    assert body["transaction"]["points"] == 14
    assert body["rules"][-1] == {"rule": "rounding", "detail": "13.5 rounded nearest to 14", "multiplier": None}
    assert body["transaction"]["rule"] == "1.5 points per USD; 13.5 rounded nearest to 14"


def test_line_items_get_category_multipliers_and_exclusions(app, client):
    key, _, member = _shop(app, client, earn_rules={"category_multipliers": {"coffee": "2"},
                                                    "excluded_categories": ["alcohol", "gift_card"]})
    items = [{"sku": "LATTE", "category": "coffee", "amount": "4.50", "quantity": 2},
             {"sku": "WINE", "category": "alcohol", "amount": "30.00"},
             {"sku": "CAKE", "category": "food", "amount": "6.00"}]
    body = earn(client, key, member["id"], items=items).get_json()
    assert body["transaction"]["points"] == 24  # 9.00 x 2 + 6.00; the wine earns nothing
    assert body["transaction"]["amount"] == "45.00"  # the whole purchase was spent
    assert [(rule["rule"], rule["multiplier"]) for rule in body["rules"]] == [
        ("base_rate", None), ("category_multiplier", "2"), ("excluded_category", None), ("rounding", None)]


def test_exactly_one_of_amount_points_or_items(app, client):
    key, _, member = _shop(app, client)
    response = earn(client, key, member["id"], amount="5.00", items=[{"amount": "5.00"}])
    assert_problem(response, 422)


def test_the_tier_multiplier_applies_to_money(app, client):
    key, _, member = _shop(app, client, tiers=[{"name": "Bronze", "threshold": 0},
                                               {"name": "Gold", "threshold": 100, "multiplier": "1.5",
                                                "perks": "Free oat milk"}])
    first = earn(client, key, member["id"], amount="100.00").get_json()
    assert (first["transaction"]["points"], first["member"]["tier"]) == (100, "Gold")
    assert first["member"]["tier_benefits"] == {"multiplier": "1.50", "perks": "Free oat milk"}
    second = earn(client, key, member["id"], amount="10.00").get_json()
    assert second["transaction"]["points"] == 15
    assert ("tier_multiplier", "1.5") in [(rule["rule"], rule["multiplier"]) for rule in second["rules"]]


def test_a_weekend_promotion_runs_on_the_programs_days_only(app, client):
    key, program, member = _shop(app, client, timezone="Asia/Tokyo", promotions=[
        {"name": "Double weekend", "multiplier": "2", "days_of_week": ["sat", "sun"]},
        {"name": "Summer", "multiplier": "3", "starts_at": "2026-07-01T00:00:00+09:00",
         "ends_at": "2026-09-01T00:00:00+09:00"}])
    with time_machine.travel(MONDAY, tick=False):
        assert earn(client, key, member["id"], amount="10.00").get_json()["transaction"]["points"] == 10
        shown = client.get(f"/api/v1/programs/{program['id']}", headers=auth(key)).get_json()["promotions"]
        assert [promotion["active"] for promotion in shown] == [False, False]
    with time_machine.travel(SATURDAY_IN_TOKYO, tick=False):
        body = earn(client, key, member["id"], amount="10.00").get_json()
        assert body["transaction"]["points"] == 20
        assert body["rules"][1] == {"rule": "promotion", "detail": "Double weekend x2", "multiplier": "2"}
    with time_machine.travel(datetime(2026, 7, 4, 3, tzinfo=timezone.utc), tick=False):  # a summer Saturday
        assert earn(client, key, member["id"], amount="10.00").get_json()["transaction"]["points"] == 30


def test_points_given_directly_apply_no_rule(app, client):
    key, _, member = _shop(app, client, promotions=[{"name": "Always", "multiplier": "3"}])
    body = earn(client, key, member["id"], points=40).get_json()
    assert body["transaction"]["points"] == 40 and body["rules"][0]["rule"] == "points"


def test_bonus_actions_are_bonus_entries_within_their_caps(app, client):
    key, _, member = _shop(app, client, bonus_actions={"review": {"points": 50, "cap": 1},
                                                       "birthday": {"points": 200, "cap": 1, "per": "year"}})
    url = f"/api/v1/members/{member['id']}/events"
    review = client.post(url, json={"kind": "review"}, headers=auth(key))
    assert review.status_code == 201, review.get_json()
    entry = review.get_json()["transaction"]
    assert (entry["kind"], entry["points"], entry["rule"], entry["reason"]) == ("bonus", 50, "bonus:review",
                                                                                 "Bonus: review")
    assert_problem(client.post(url, json={"kind": "review"}, headers=auth(key)), 409)
    with time_machine.travel(datetime(2026, 12, 31, tzinfo=timezone.utc), tick=False):
        assert client.post(url, json={"kind": "birthday"}, headers=auth(key)).status_code == 201
        assert_problem(client.post(url, json={"kind": "birthday"}, headers=auth(key)), 409)
    with time_machine.travel(datetime(2027, 1, 1, 1, tzinfo=timezone.utc), tick=False):
        assert client.post(url, json={"kind": "birthday"}, headers=auth(key)).status_code == 201
    problem = assert_problem(client.post(url, json={"kind": "share"}, headers=auth(key)), 422)
    assert "kind" in problem["errors"]
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["points_balance"] == 450
