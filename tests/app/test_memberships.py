"""Paid membership periods grant a tier while they run, remind before the end, and lapse back to the earned
tier."""

from datetime import datetime, timedelta, timezone

import time_machine
from sqlalchemy import select

from app.domain import events, sweeps
from app.models import OutboxEvent
from app.services import db_session
from tests.factories import assert_problem, auth, make_member, make_merchant, make_program

NOW = datetime(2026, 5, 1, 9, tzinfo=timezone.utc)
TIERS = [{"name": "Bronze", "threshold": 0}, {"name": "Silver", "threshold": 200}, {"name": "VIP", "threshold": 5000}]


def _shop(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, tiers=TIERS)
    return key, program, {tier["name"]: tier["id"] for tier in program["tiers"]}


def _sweep(app, as_of):
    with app.app_context():
        session = db_session()
        result = sweeps.update_memberships(session, as_of)
        session.commit()
        return result


def _member(client, key, member_id):
    return client.get(f"/api/v1/members/{member_id}", headers=auth(key)).get_json()


def test_a_paid_period_grants_its_tier_reminds_and_lapses_to_the_earned_tier(app, client):
    key, program, tiers = _shop(app, client)
    member = make_member(client, key, program["id"], points=250)  # Silver, earned
    events.add_channel("test-renewal", lambda s, merchant_id, type, member_id: type == "membership.renewal_due"
                       and member_id == member["id"])
    try:
        with time_machine.travel(NOW, tick=False):
            response = client.post(f"/api/v1/members/{member['id']}/memberships", headers=auth(key), json={
                "tier_id": tiers["VIP"], "ends_at": "2026-06-01T00:00:00Z", "amount": "49.00", "remind_days": 10})
            assert response.status_code == 201, response.get_json()
            assert response.get_json()["active"] is True and response.get_json()["currency"] == "USD"
            body = _member(client, key, member["id"])
            assert (body["tier"], body["membership"]) == ("VIP", {"tier": "VIP",
                                                                  "ends_at": "2026-06-01T00:00:00+00:00"})
        _sweep(app, datetime(2026, 5, 21, tzinfo=timezone.utc))
        _sweep(app, datetime(2026, 5, 23, tzinfo=timezone.utc))
        with app.app_context():
            reminders = db_session().scalars(select(OutboxEvent).where(OutboxEvent.kind == "test-renewal")).all()
        assert [row.payload["event"]["data"]["ends_at"] for row in reminders] == ["2026-06-01T00:00:00+00:00"]
    finally:
        events._channels.pop("test-renewal")
    assert _sweep(app, datetime(2026, 6, 1, tzinfo=timezone.utc))["changed"] >= 1
    body = _member(client, key, member["id"])
    assert (body["tier"], body["membership"]) == ("Silver", None)


def test_a_period_starting_later_applies_at_its_start(app, client):
    key, program, tiers = _shop(app, client)
    member = make_member(client, key, program["id"])
    with time_machine.travel(NOW, tick=False):
        client.post(f"/api/v1/members/{member['id']}/memberships", headers=auth(key), json={
            "tier_id": tiers["VIP"], "starts_at": "2026-05-10T00:00:00Z", "ends_at": "2026-06-10T00:00:00Z",
            "amount": "49.00"})
        assert _member(client, key, member["id"])["tier"] == "Bronze"
    _sweep(app, datetime(2026, 5, 10, tzinfo=timezone.utc))
    with time_machine.travel(datetime(2026, 5, 10, 1, tzinfo=timezone.utc), tick=False):
        assert _member(client, key, member["id"])["tier"] == "VIP"
        listed = client.get(f"/api/v1/members/{member['id']}/memberships", headers=auth(key)).get_json()["data"]
        assert [(period["tier"], period["active"], period["amount"]) for period in listed] == [("VIP", True, "49.00")]


def test_a_membership_below_the_earned_tier_changes_nothing(app, client):
    key, program, tiers = _shop(app, client)
    member = make_member(client, key, program["id"], points=300)
    client.post(f"/api/v1/members/{member['id']}/memberships", headers=auth(key), json={
        "tier_id": tiers["Bronze"], "ends_at": "2099-01-01T00:00:00Z", "amount": "1.00"})
    assert _member(client, key, member["id"])["tier"] == "Silver"


def test_an_ended_or_foreign_period_is_refused(app, client):
    key, program, tiers = _shop(app, client)
    member = make_member(client, key, program["id"])
    url = f"/api/v1/members/{member['id']}/memberships"
    past = client.post(url, headers=auth(key), json={"tier_id": tiers["VIP"], "ends_at": "2020-01-01T00:00:00Z",
                                                     "amount": "1.00"})
    assert "ends_at" in assert_problem(past, 422)["errors"]
    _, other_key, other_tiers = _shop(app, client)
    foreign = client.post(url, headers=auth(key), json={"tier_id": other_tiers["VIP"], "amount": "1.00",
                                                        "ends_at": (NOW + timedelta(days=3650)).isoformat()})
    assert "tier_id" in assert_problem(foreign, 422)["errors"]


def test_removing_the_tier_a_membership_grants_leaves_the_earned_tier(app, client):
    key, program, tiers = _shop(app, client)
    member = make_member(client, key, program["id"], points=250)
    client.post(f"/api/v1/members/{member['id']}/memberships", headers=auth(key), json={
        "tier_id": tiers["VIP"], "ends_at": "2099-01-01T00:00:00Z", "amount": "49.00"})
    kept = [tier for tier in program["tiers"] if tier["name"] != "VIP"]
    response = client.patch(f"/api/v1/programs/{program['id']}", json={"tiers": kept}, headers=auth(key))
    assert response.status_code == 200, response.get_json()
    body = _member(client, key, member["id"])
    assert (body["tier"], body["membership"]) == ("Silver", None)
    listed = client.get(f"/api/v1/members/{member['id']}/memberships", headers=auth(key)).get_json()["data"]
    assert [period["tier"] for period in listed] == [None]
