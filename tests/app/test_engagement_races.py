"""Referrals and surveys under concurrent requests: referrals completing at once get distinct ordinals (so the
tiered incentive is paid as counted), the daily velocity cap holds, and a survey answered from two tabs at once
pays its bonus once. (SQLite serialises writers; PostgreSQL is the race.)"""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from app.models import LedgerEntry, Referral
from app.services import services
from tests.app.test_races import at_once
from tests.factories import auth, make_member, make_merchant, make_program


@pytest.fixture(scope="module")
def app(own_database_app):
    return own_database_app


def test_referrals_completing_at_once_get_distinct_ordinals_and_tiers(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": {
        "trigger": "first_purchase", "referrer_points": 10, "referee_points": 1,
        "tiers": [{"from": 3, "referrer_points": 100}]}}, headers=auth(key))
    referrer = make_member(client, key, program["id"])
    referees = [make_member(client, key, program["id"], referral_code=referrer["referral_code"]) for _ in range(4)]

    def buy(c, n):
        return c.post(f"/api/v1/members/{referees[n]['id']}/earn", json={"points": 5},
                      headers=auth(key, str(uuid.uuid4())))

    assert [r.status_code for r in at_once(app, 4, buy)] == [201] * 4
    with services(app).sessions() as session:
        ordinals = session.scalars(select(Referral.ordinal).where(Referral.referrer_id == referrer["id"])).all()
    assert sorted(ordinals) == [1, 2, 3, 4]
    balance = client.get(f"/api/v1/members/{referrer['id']}", headers=auth(key)).get_json()["points_balance"]
    assert balance == 10 + 10 + 100 + 100


def test_the_per_referrer_daily_cap_holds_for_enrolments_at_once(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    client.patch(f"/api/v1/programs/{program['id']}", json={"referrals": {
        "trigger": "signup", "referrer_points": 10, "max_per_referrer_per_day": 3}}, headers=auth(key))
    referrer = make_member(client, key, program["id"])

    def enrol(c, n):
        return c.post(f"/api/v1/programs/{program['id']}/members", json={
            "name": f"Friend {n}", "referral_code": referrer["referral_code"]}, headers=auth(key, str(uuid.uuid4())))

    assert [r.status_code for r in at_once(app, 6, enrol)] == [201] * 6
    with services(app).sessions() as session:
        states = session.scalars(select(Referral.state).where(Referral.referrer_id == referrer["id"])).all()
    assert sorted(states) == ["completed"] * 3 + ["rejected"] * 3


def test_a_survey_answered_from_two_tabs_at_once_pays_once(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    survey = client.post(f"/api/v1/programs/{program['id']}/surveys", json={
        "title": "Visit", "questions": [{"kind": "rating", "text": "How was it?"}], "bonus_points": 25},
        headers=auth(key)).get_json()
    member = make_member(client, key, program["id"])
    url = client.post(f"/api/v1/surveys/{survey['id']}/send", json={"member_id": member["id"]},
                      headers=auth(key, str(uuid.uuid4()))).get_json()["url"]
    path = url[url.index("/join/"):]

    tabs = [app.test_client() for _ in range(4)]
    tokens = [re.search(r'name="csrf_token" value="([^"]+)"', tab.get(path).get_data(as_text=True))[1]
              for tab in tabs]  # four forms open before anyone answers

    def answer(_c, n):
        return tabs[n].post(path, data={"csrf_token": tokens[n], "q1": str(n + 1)})

    assert sorted(r.status_code for r in at_once(app, 4, answer)) == [200, 409, 409, 409]
    with services(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.member_id == member["id"], LedgerEntry.kind == "bonus")) == 1
