"""The segments and campaigns page: counts now, a campaign sent from a form shows its results, cancelling stops a
scheduled one, and staff only read."""

from __future__ import annotations

import uuid
from datetime import timedelta

from app.models import utcnow
from tests.dashboard.helpers import signed_in_owner
from tests.factories import auth, make_member, make_merchant, make_program

RULES = '{"conditions": [{"field": "points_balance", "op": "gte", "value": 100}]}'


def setup(app):
    client = app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, name="Kissa Hoshi")
    make_member(client, admin, program["id"], points=150, name="Mina Park")
    make_member(client, admin, program["id"], name="Jun Sato")
    owner = signed_in_owner(app, merchant_id, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    return client, admin, program, owner, merchant_id


def test_owner_adds_a_segment_sees_its_count_and_sends_a_campaign(app):
    client, admin, program, owner, _ = setup(app)
    page = "/dashboard/campaigns"
    added = owner.post(f"/dashboard/programs/{program['id']}/segments", {"name": "Regulars", "rules": RULES},
                       page=page)
    assert added.status_code == 303
    segment = client.get(f"/api/v1/programs/{program['id']}/segments", headers=auth(admin)).get_json()["data"][0]
    html = owner.get(page).get_data(as_text=True)
    assert f'id="segment-{segment["id"]}-count">1<' in html

    sent = owner.post(f"/dashboard/programs/{program['id']}/campaigns", {
        "name": "Autumn", "segment_id": str(segment["id"]), "title": "秋の新作", "body": "栗のラテが登場"}, page=page)
    assert sent.status_code == 303
    campaign = client.get(f"/api/v1/programs/{program['id']}/campaigns", headers=auth(admin)).get_json()["data"][0]
    assert (campaign["name"], campaign["status"], campaign["results"]["targeted"]) == ("Autumn", "sending", 1)
    assert f'id="campaign-{campaign["id"]}"' in owner.get(page).get_data(as_text=True)


def test_a_bad_rule_or_campaign_is_refused_with_the_reason(app):
    _, _, program, owner, _ = setup(app)
    page = "/dashboard/campaigns"
    owner.post(f"/dashboard/programs/{program['id']}/segments", {"name": "Bad", "rules": "{nope"}, page=page)
    assert "not valid JSON" in owner.get(page).get_data(as_text=True)
    owner.post(f"/dashboard/programs/{program['id']}/segments", {"name": "Bad", "rules": '{"conditions": []}'},
               page=page)
    assert "1 to 20 conditions" in owner.get(page).get_data(as_text=True)


def test_owner_cancels_a_scheduled_campaign(app):
    client, admin, program, owner, _ = setup(app)
    segment = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(admin), json={
        "name": "All", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 0}]}}).get_json()
    campaign = client.post(f"/api/v1/programs/{program['id']}/campaigns", headers=auth(admin), json={
        "name": "Later", "segment_id": segment["id"], "message": {"title": "t", "body": "b"},
        "send_at": (utcnow() + timedelta(days=1)).isoformat()}).get_json()
    response = owner.post(f"/dashboard/campaigns/{campaign['id']}/cancel", page="/dashboard/campaigns")
    assert response.status_code == 303
    assert client.get(f"/api/v1/campaigns/{campaign['id']}", headers=auth(admin)).get_json()["status"] == "cancelled"


def test_another_merchants_campaign_cannot_be_cancelled(app):
    client, admin, program, _, _ = setup(app)
    segment = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(admin), json={
        "name": "All", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 0}]}}).get_json()
    campaign = client.post(f"/api/v1/programs/{program['id']}/campaigns", headers=auth(admin), json={
        "name": "Later", "segment_id": segment["id"], "message": {"title": "t", "body": "b"},
        "send_at": (utcnow() + timedelta(days=1)).isoformat()}).get_json()
    other_id, _ = make_merchant(app)
    other = signed_in_owner(app, other_id, f"other-{uuid.uuid4().hex[:8]}@example.com")
    other.post(f"/dashboard/campaigns/{campaign['id']}/cancel", page="/dashboard/campaigns")
    assert client.get(f"/api/v1/campaigns/{campaign['id']}", headers=auth(admin)).get_json()["status"] == "scheduled"
    assert "Kissa Hoshi" not in other.get("/dashboard/campaigns").get_data(as_text=True)
