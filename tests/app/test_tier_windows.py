"""Tiers qualify on points earned within a rolling window; upgrades at once, downgrades only at the review date
after the grace period; overrides are explicit and end; dates hold across month ends and leap days."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import time_machine

from app.domain import sweeps
from app.domain.calendar import add_months
from app.services import db_session
from tests.factories import auth, earn, make_member, make_merchant, make_program, redeem

UTC = timezone.utc
LEAP_DAY = datetime(2028, 2, 29, 12, tzinfo=UTC)
TIERS = [{"name": "Bronze", "threshold": 0}, {"name": "Gold", "threshold": 500}]


def _shop(app, client, **fields):
    _, key = make_merchant(app)
    program = make_program(client, key, **{"tiers": TIERS, **fields})
    return key, program


def _member(client, key, member_id) -> dict:
    return client.get(f"/api/v1/members/{member_id}", headers=auth(key)).get_json()


def _review(app, as_of):
    with app.app_context():
        session = db_session()
        sweeps.review_tiers(session, as_of)
        session.commit()


def test_add_months_keeps_the_day_or_takes_the_months_last():
    tokyo = ZoneInfo("Asia/Tokyo")
    assert add_months(UTC, LEAP_DAY, 12) == datetime(2029, 2, 28, 12, tzinfo=UTC)
    assert add_months(UTC, LEAP_DAY, 48) == datetime(2032, 2, 29, 12, tzinfo=UTC)
    assert add_months(UTC, datetime(2027, 1, 31, tzinfo=UTC), 1) == datetime(2027, 2, 28, tzinfo=UTC)
    assert add_months(UTC, datetime(2028, 1, 31, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)
    assert add_months(UTC, datetime(2027, 3, 31, tzinfo=UTC), -1) == datetime(2027, 2, 28, tzinfo=UTC)
    # 31 Mar 20:00 UTC is 1 Apr in Tokyo: a month later is 1 May there
    assert add_months(tokyo, datetime(2027, 3, 31, 20, tzinfo=UTC), 1) == datetime(2027, 5, 1, 5, tzinfo=tokyo)


def test_upgrade_at_once_and_spending_never_costs_the_tier(app, client):
    key, program = _shop(app, client)
    member = make_member(client, key, program["id"])
    assert member["tier"] == "Bronze" and member["next_tier"] == {"name": "Gold", "points_needed": 500}
    with time_machine.travel(LEAP_DAY, tick=False):
        body = earn(client, key, member["id"], points=500).get_json()["member"]
        assert (body["tier"], body["tier_review_at"]) == ("Gold", "2029-02-28T12:00:00+00:00")
        assert redeem(client, key, member["id"], points=500).get_json()["member"]["tier"] == "Gold"


def test_only_points_earned_within_the_window_count(app, client):
    key, program = _shop(app, client, tier_rules={"window_months": 1})
    member = make_member(client, key, program["id"])
    with time_machine.travel(datetime(2027, 1, 31, 12, tzinfo=UTC), tick=False) as clock:
        earn(client, key, member["id"], points=300)
        clock.move_to(datetime(2027, 3, 1, 12, tzinfo=UTC))  # the window is 1 Feb to 1 Mar: 31 Jan has left it
        body = earn(client, key, member["id"], points=300).get_json()["member"]
        assert body["tier"] == "Bronze" and body["tier_qualifying"] == "300.00"
        clock.move_to(datetime(2027, 3, 10, tzinfo=UTC))
        assert earn(client, key, member["id"], points=200).get_json()["member"]["tier"] == "Gold"


def test_a_downgrade_waits_for_the_review_date_plus_grace(app, client):
    key, program = _shop(app, client, tier_rules={"window_months": 12, "grace_days": 30})
    member = make_member(client, key, program["id"])
    with time_machine.travel(LEAP_DAY, tick=False):
        earn(client, key, member["id"], points=500)
    review = datetime(2029, 2, 28, 12, tzinfo=UTC)
    _review(app, review + timedelta(days=29, hours=23))
    assert _member(client, key, member["id"])["tier"] == "Gold"  # inside the grace period
    _review(app, review + timedelta(days=30))
    after = _member(client, key, member["id"])
    assert (after["tier"], after["tier_review_at"]) == ("Bronze", "2030-03-30T12:00:00+00:00")
    _review(app, review + timedelta(days=30))  # idempotent
    assert _member(client, key, member["id"])["tier"] == "Bronze"


def test_earning_again_within_the_window_keeps_the_tier_for_another_window(app, client):
    key, program = _shop(app, client, tier_rules={"window_months": 12, "grace_days": 0})
    member = make_member(client, key, program["id"])
    with time_machine.travel(LEAP_DAY, tick=False) as clock:
        earn(client, key, member["id"], points=500)
        clock.move_to(datetime(2028, 12, 1, tzinfo=UTC))
        earn(client, key, member["id"], points=500)
    _review(app, datetime(2029, 3, 1, tzinfo=UTC))
    after = _member(client, key, member["id"])
    assert (after["tier"], after["tier_review_at"]) == ("Gold", "2030-02-28T12:00:00+00:00")


def test_raising_a_threshold_never_downgrades_at_once(app, client):
    key, program = _shop(app, client)
    member = make_member(client, key, program["id"], points=500)
    gold = program["tiers"][1]
    response = client.patch(f"/api/v1/programs/{program['id']}", headers=auth(key), json={"tiers": [
        {"id": program["tiers"][0]["id"], "name": "Bronze", "threshold": 0},
        {"id": gold["id"], "name": "Gold", "threshold": 5000}]})
    assert response.status_code == 200, response.get_json()
    assert _member(client, key, member["id"])["tier"] == "Gold"


def test_lowering_a_threshold_upgrades_those_whose_window_reaches_it(app, client):
    key, program = _shop(app, client)
    member = make_member(client, key, program["id"], points=300)
    client.patch(f"/api/v1/programs/{program['id']}", headers=auth(key), json={"tiers": [
        {"id": program["tiers"][0]["id"], "name": "Bronze", "threshold": 0},
        {"id": program["tiers"][1]["id"], "name": "Gold", "threshold": 250}]})
    assert _member(client, key, member["id"])["tier"] == "Gold"


def test_an_override_is_explicit_and_ends(app, client):
    key, program = _shop(app, client)
    member = make_member(client, key, program["id"])
    url = f"/api/v1/members/{member['id']}/tier-override"
    endless = client.put(url, json={"tier_id": program["tiers"][1]["id"]}, headers=auth(key))
    assert "until" in endless.get_json()["errors"]
    with time_machine.travel(LEAP_DAY, tick=False):
        body = client.put(url, json={"tier_id": program["tiers"][1]["id"], "until": "2028-03-31T00:00:00Z"},
                          headers=auth(key)).get_json()
    assert body["tier"] == "Gold"
    assert body["tier_override"] == {"tier": "Gold", "until": "2028-03-31T00:00:00+00:00"}
    _review(app, datetime(2028, 3, 30, tzinfo=UTC))
    assert _member(client, key, member["id"])["tier"] == "Gold"
    _review(app, datetime(2028, 3, 31, tzinfo=UTC))
    after = _member(client, key, member["id"])
    assert (after["tier"], after["tier_override"]) == ("Bronze", None)


def test_a_reversed_earn_takes_back_the_tier_it_reached(app, client):
    key, program = _shop(app, client)
    member = make_member(client, key, program["id"])
    credit = earn(client, key, member["id"], points=500).get_json()["transaction"]
    body = client.post(f"/api/v1/transactions/{credit['id']}/reverse", json={"points": 100},
                       headers=auth(key)).get_json()
    assert body["member"]["tier"] == "Bronze"
    assert body["member"]["next_tier"] == {"name": "Gold", "points_needed": 100}


def test_spend_based_tiers_count_money(app, client):
    key, program = _shop(app, client, tier_rules={"basis": "spend"},
                         tiers=[{"name": "Regular", "threshold": 0}, {"name": "VIP", "threshold": 1000}])
    member = make_member(client, key, program["id"])
    assert earn(client, key, member["id"], points=5000).get_json()["member"]["tier"] == "Regular"
    assert earn(client, key, member["id"], amount="999.99").get_json()["member"]["tier"] == "Regular"
    assert earn(client, key, member["id"], amount="0.01").get_json()["member"]["tier"] == "VIP"


def test_reviews_fall_on_the_tiers_monthly_anniversaries_without_drifting(app, client):
    key, program = _shop(app, client, tier_rules={"window_months": 1, "grace_days": 0})
    member = make_member(client, key, program["id"])
    with time_machine.travel(datetime(2027, 1, 31, 12, tzinfo=UTC), tick=False) as clock:
        earn(client, key, member["id"], points=500)
        reviews = []
        for day in (datetime(2027, 2, 20, tzinfo=UTC), datetime(2027, 3, 20, tzinfo=UTC),
                    datetime(2027, 4, 20, tzinfo=UTC)):
            clock.move_to(day)
            earn(client, key, member["id"], points=500)  # still qualifying at each review
            _review(app, day + timedelta(days=12))
            reviews.append(_member(client, key, member["id"])["tier_review_at"][:10])
    assert reviews == ["2027-03-31", "2027-04-30", "2027-05-31"]


def test_a_longer_window_upgrades_at_once_and_a_shorter_one_downgrades_nobody(app, client):
    key, program = _shop(app, client, tier_rules={"window_months": 1})
    member = make_member(client, key, program["id"])
    with time_machine.travel(datetime(2027, 1, 31, 12, tzinfo=UTC), tick=False) as clock:
        earn(client, key, member["id"], points=300)
        clock.move_to(datetime(2027, 3, 1, 12, tzinfo=UTC))
        assert earn(client, key, member["id"], points=300).get_json()["member"]["tier"] == "Bronze"
        longer = client.patch(f"/api/v1/programs/{program['id']}", json={"tier_rules": {"window_months": 12}},
                              headers=auth(key))
        assert longer.status_code == 200, longer.get_json()
        body = _member(client, key, member["id"])
        assert (body["tier"], body["tier_qualifying"]) == ("Gold", "600.00")
        client.patch(f"/api/v1/programs/{program['id']}", json={"tier_rules": {"window_months": 1}},
                     headers=auth(key))
        body = _member(client, key, member["id"])
        assert (body["tier"], body["tier_qualifying"]) == ("Gold", "300.00")
