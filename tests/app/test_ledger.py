"""Earn, redeem and reverse through the API, as a till would; balances always match the ledger."""

import pytest

from app.domain.ledger import verify_balances
from app.services import services
from tests.factories import auth, earn, make_member, make_merchant, make_program, make_reward, redeem


@pytest.fixture
def shop(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, points_per_unit="1")
    return key, program


def test_amount_converts_by_points_per_unit_rounding_down(client, shop):
    key, _ = shop
    program = make_program(client, key, points_per_unit="10")
    member = make_member(client, key, program["id"])
    body = earn(client, key, member["id"], amount="3.99").get_json()
    assert body["transaction"]["points"] == 39
    assert body["member"]["points_balance"] == 39


def test_program_can_choose_rounding_to_nearest(client, shop):
    key, _ = shop
    program = make_program(client, key, points_per_unit="1", rounding="nearest")
    member = make_member(client, key, program["id"])
    assert earn(client, key, member["id"], amount="12.50").get_json()["member"]["points_balance"] == 13


def test_redeem_reward_charges_its_cost_and_names_it(client, shop):
    key, program = shop
    reward = make_reward(client, key, program["id"], "Free latte", 120)
    member = make_member(client, key, program["id"], points=200)
    response = redeem(client, key, member["id"], reward_id=reward["id"])
    assert response.status_code == 201
    body = response.get_json()
    assert body["member"]["points_balance"] == 80
    assert body["transaction"]["reason"] == "Free latte" and body["transaction"]["reward_id"] == reward["id"]


def test_redeem_more_than_balance_is_409_and_writes_nothing(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"], points=30)
    response = redeem(client, key, member["id"], points=31)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    statement = client.get(f"/api/v1/members/{member['id']}/transactions", headers=auth(key)).get_json()
    assert [t["kind"] for t in statement["data"]] == ["earn"]
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["points_balance"] == 30


def test_reward_of_another_program_cannot_be_redeemed(client, shop):
    key, program = shop
    other = make_program(client, key, name="Other")
    reward = make_reward(client, key, other["id"], "Elsewhere", 10)
    member = make_member(client, key, program["id"], points=100)
    response = redeem(client, key, member["id"], reward_id=reward["id"])
    assert response.status_code == 422 and "reward_id" in response.get_json()["errors"]


def test_tier_follows_points_earned_not_the_balance(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"], points=600)
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["tier"] == "Gold"
    after = redeem(client, key, member["id"], points=500).get_json()["member"]
    assert after["points_balance"] == 100 and after["tier"] == "Gold"


def test_reversing_an_earn_claws_back_and_reports_spent_points_as_shortfall(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"])
    purchase = earn(client, key, member["id"], points=100, reference="order-1").get_json()["transaction"]
    redeem(client, key, member["id"], points=70)
    response = client.post(f"/api/v1/transactions/{purchase['id']}/reverse", json={},
                           headers=auth(key, "refund-order-1"))
    assert response.status_code == 201
    body = response.get_json()
    assert body["member"]["points_balance"] == 0  # never negative
    assert body["transaction"]["points"] == -30 and body["shortfall"] == 70
    again = client.post(f"/api/v1/transactions/{purchase['id']}/reverse", json={}, headers=auth(key, "second"))
    assert again.status_code == 409


def test_partial_reversal_of_a_redeem_gives_points_back(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"], points=100)
    spend = redeem(client, key, member["id"], points=60).get_json()["transaction"]
    first = client.post(f"/api/v1/transactions/{spend['id']}/reverse", json={"points": 20}, headers=auth(key, "a"))
    assert first.get_json()["member"]["points_balance"] == 60
    too_much = client.post(f"/api/v1/transactions/{spend['id']}/reverse", json={"points": 41},
                           headers=auth(key, "b"))
    assert too_much.status_code == 422 and "points" in too_much.get_json()["errors"]
    rest = client.post(f"/api/v1/transactions/{spend['id']}/reverse", json={}, headers=auth(key, "c"))
    assert rest.get_json()["member"]["points_balance"] == 100


def test_transactions_are_listed_newest_first_in_pages(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"])
    for points in (1, 2, 3, 4, 5):
        earn(client, key, member["id"], points=points)
    url = f"/api/v1/members/{member['id']}/transactions"
    first = client.get(url + "?limit=2", headers=auth(key)).get_json()
    assert [t["points"] for t in first["data"]] == [5, 4]
    rest = client.get(f"{url}?limit=10&before={first['next_before']}", headers=auth(key)).get_json()
    assert [t["points"] for t in rest["data"]] == [3, 2, 1] and rest["next_before"] is None


def test_cached_balances_match_the_ledger_sum(app, client, shop):
    key, program = shop
    member = make_member(client, key, program["id"], points=90)
    redeem(client, key, member["id"], points=40)
    with app.app_context():
        session = services(app).sessions()
        assert verify_balances(session) == []
        session.close()


def test_checkout_lookup_by_barcode_lists_redeemable_rewards(client, shop):
    key, program = shop
    make_reward(client, key, program["id"], "Cookie", 50)
    make_reward(client, key, program["id"], "Cake", 500)
    member = make_member(client, key, program["id"], points=120)
    response = client.post("/api/v1/checkout/lookup", json={"barcode": member["barcode_value"]}, headers=auth(key))
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == member["id"] and body["points_balance"] == 120
    assert [r["name"] for r in body["redeemable_rewards"]] == ["Cookie"]
    unknown = client.post("/api/v1/checkout/lookup", json={"barcode": "nope"}, headers=auth(key))
    assert unknown.status_code == 404


def test_manual_adjustment_needs_a_reason_and_never_goes_negative(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"], points=20)
    url = f"/api/v1/members/{member['id']}/adjust"
    missing_reason = client.post(url, json={"points": 5}, headers=auth(key))
    assert missing_reason.status_code == 422 and "reason" in missing_reason.get_json()["errors"]
    credit = client.post(url, json={"points": 5, "reason": "Coffee was cold"}, headers=auth(key, "adj-1"))
    assert credit.status_code == 201 and credit.get_json()["transaction"]["reason"] == "Coffee was cold"
    too_much = client.post(url, json={"points": -26, "reason": "Till mistake"}, headers=auth(key, "adj-2"))
    assert too_much.status_code == 409
    debit = client.post(url, json={"points": -25, "reason": "Till mistake"}, headers=auth(key, "adj-3"))
    assert debit.get_json()["member"]["points_balance"] == 0
