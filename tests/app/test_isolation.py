"""Tenant isolation: another merchant's objects are simply not found (404), on every merchant API route, and
nothing of theirs leaks or changes. The routes are read from `app.url_map`, so a new route is covered the day it
is added: it fails here until it has an entry in `TENANT_IDS` / `WRITE_BODIES` (or `OWN_DATA_ONLY`)."""

from __future__ import annotations

import uuid
from io import BytesIO

from app.domain.webhooks import fan_out
from app.models import WebhookDelivery, WebhookEndpoint
from app.services import db_session
from tests.factories import (
    assert_problem,
    auth,
    make_api_key,
    make_member,
    make_merchant,
    make_png,
    make_program,
    make_reward,
    merchant_api_routes,
    redeem,
)

KNOWN_ENDPOINTS = {
    ("POST", "programs.create_program"), ("GET", "programs.get_program"), ("PATCH", "programs.update_program"),
    ("POST", "programs.create_reward"), ("PUT", "programs.upload_image"), ("POST", "members.enroll"),
    ("GET", "members.get_member"), ("POST", "members.earn"), ("POST", "members.redeem"),
    ("POST", "members.reverse"), ("POST", "members.adjust"), ("GET", "members.transactions"),
    ("GET", "members.member_pass"),
    ("POST", "checkout.lookup"), ("POST", "checkout.place_hold"), ("GET", "checkout.get_hold"),
    ("POST", "checkout.capture_hold"), ("POST", "checkout.void_hold"), ("POST", "checkout.enrol_at_counter"),
    ("POST", "pairing.create"),
    ("POST", "fcm.register_device"), ("DELETE", "fcm.remove_device"),
    ("POST", "webhooks.create_webhook"), ("GET", "webhooks.list_webhooks"), ("DELETE", "webhooks.delete_webhook"),
    ("GET", "webhooks.deliveries"), ("POST", "webhooks.replay"),
}

# Routes that only create the caller's own data and take no other object's id: nothing to isolate.
OWN_DATA_ONLY = {("POST", "programs.create_program"), ("PUT", "fcm.put_credentials"),
                 ("GET", "fcm.get_credentials"), ("DELETE", "fcm.delete_credentials"),
                 ("POST", "webhooks.create_webhook"), ("GET", "webhooks.list_webhooks"),
                 ("POST", "pairing.create")}


def test_route_walk_finds_every_known_merchant_route(app):
    walked = {(method, rule.endpoint) for method, rule in merchant_api_routes(app)}
    assert KNOWN_ENDPOINTS <= walked, KNOWN_ENDPOINTS - walked


def test_every_route_answers_404_for_another_merchants_ids(app, client):
    tenant_a = make_tenant_with_history(app, client)
    _, key_b = make_merchant(app, "Rival Roasters")
    failures = []
    for method, rule in merchant_api_routes(app):
        if (method, rule.endpoint) in OWN_DATA_ONLY:
            continue
        response = call_with_ids_of(client, key_b, method, rule, tenant_a)
        failures.extend(isolation_failures(method, rule.rule, response, tenant_a))
    assert not failures, "\n".join(failures)


def test_checkout_lookup_with_another_merchants_barcode_is_not_found(app, client):
    tenant_a = make_tenant_with_history(app, client)
    merchant_b, _ = make_merchant(app, "Rival Roasters")
    till_b = make_api_key(app, merchant_b, "pos")
    response = client.post("/api/v1/checkout/lookup", json={"barcode": tenant_a["member"]["barcode_value"]},
                           headers=auth(till_b))
    assert_problem(response, 404)
    assert tenant_a["member"]["name"] not in response.get_data(as_text=True)


def test_redeeming_another_merchants_reward_is_refused_and_writes_nothing(app, client):
    tenant_a = make_tenant_with_history(app, client)
    _, key_b = make_merchant(app, "Rival Roasters")
    program_b = make_program(client, key_b)
    member_b = make_member(client, key_b, program_b["id"], points=500)
    response = redeem(client, key_b, member_b["id"], reward_id=tenant_a["reward"]["id"])
    assert response.status_code in (404, 422), response.get_json()
    assert tenant_a["reward"]["name"] not in response.get_data(as_text=True)
    after = client.get(f"/api/v1/members/{member_b['id']}", headers=auth(key_b)).get_json()
    assert after["points_balance"] == 500


def test_calls_with_another_merchants_ids_leave_its_data_unchanged(app, client):
    tenant_a = make_tenant_with_history(app, client)
    before = snapshot(client, tenant_a)
    _, key_b = make_merchant(app, "Rival Roasters")
    for method, rule in merchant_api_routes(app):
        if (method, rule.endpoint) not in OWN_DATA_ONLY:
            call_with_ids_of(client, key_b, method, rule, tenant_a)
    assert snapshot(client, tenant_a) == before
    assert before["balance"] == 250


def make_tenant_with_history(app, client) -> dict:
    """Merchant A with a program, a reward, a member holding points, a transaction and a hold."""
    _, key = make_merchant(app, "Bean There")
    program = make_program(client, key)
    reward = make_reward(client, key, program["id"], name=f"Secret reward {uuid.uuid4().hex[:6]}")
    member = make_member(client, key, program["id"], points=250, name=f"Ada Tenant {uuid.uuid4().hex[:6]}")
    statement = client.get(f"/api/v1/members/{member['id']}/transactions", headers=auth(key)).get_json()
    hold = client.post("/api/v1/checkout/holds", json={"member_id": member["id"], "points": 20},
                       headers=auth(key, str(uuid.uuid4()))).get_json()
    challenge = client.post(f"/api/v1/programs/{program['id']}/challenges", headers=auth(key), json={
        "name": "Regular", "goal": "visits", "target": 3, "window": "month", "reward_points": 50}).get_json()
    offer = client.post(f"/api/v1/programs/{program['id']}/offers", headers=auth(key),
                        json={"name": "Tenant's offer", "kind": "default", "texts": {"en": "A secret perk"}}).get_json()
    survey = client.post(f"/api/v1/programs/{program['id']}/surveys", json={
        "title": "Secret survey", "questions": [{"kind": "rating", "text": "How was it?"}]},
        headers=auth(key)).get_json()
    return {"key": key, "program": program, "reward": reward, "member": member, "survey": survey, "offer": offer,
            "transaction": statement["data"][0], "hold": hold, "challenge": challenge,
            **make_webhook_with_delivery(client.application, client, key), **make_campaign(client, key, program)}


def make_campaign(client, key: str, program: dict) -> dict:
    """A segment, a campaign scheduled for later and a surprise (on a segment of nobody: balances stay)."""
    segment = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(key), json={
        "name": "All", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 0}]}}).get_json()
    campaign = client.post(f"/api/v1/programs/{program['id']}/campaigns", headers=auth(key), json={
        "name": "Later", "segment_id": segment["id"], "message": {"title": "t", "body": "b"},
        "send_at": "2099-01-01T00:00:00Z"}).get_json()
    nobody = client.post(f"/api/v1/programs/{program['id']}/segments", headers=auth(key), json={
        "name": "Nobody", "rules": {"conditions": [{"field": "tag", "op": "has", "value": ["none"]}]}}).get_json()
    surprise = client.post(f"/api/v1/programs/{program['id']}/surprises", headers=auth(key), json={
        "segment_id": nobody["id"], "sample_size": 1, "points": 1, "seed": "s"}).get_json()
    return {"segment": segment, "campaign": campaign, "surprise": surprise}


def make_webhook_with_delivery(app, client, key: str) -> dict:
    """A webhook and a dead delivery of it (replayable), made as the worker would have."""
    webhook = client.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/", "events": ["points.earned"]},
                          headers=auth(key)).get_json()
    with app.app_context():
        session = db_session()
        merchant_id = session.get(WebhookEndpoint, webhook["id"]).merchant_id
        [delivery_id] = fan_out(session, [(merchant_id, {"id": f"evt_{uuid.uuid4().hex}", "type": "points.earned",
                                                         "created_at": "2026-01-01T00:00:00+00:00", "data": {}})])
        session.get(WebhookDelivery, delivery_id).status = "dead"
        session.commit()
        return {"webhook": webhook, "delivery_id": delivery_id}


def tenant_ids(tenant: dict) -> dict:
    """Each path parameter of the merchant API -> the value that names one of the tenant's objects."""
    return {"program_id": tenant["program"]["id"], "member_id": tenant["member"]["id"],
            "transaction_id": tenant["transaction"]["id"], "hold_id": tenant["hold"]["id"], "kind": "logo",
            "reward_id": tenant["reward"]["id"],
            "token": "fcm-token-of-the-tenant-0001", "webhook_id": tenant["webhook"]["id"],
            "delivery_id": tenant["delivery_id"], "survey_id": tenant["survey"]["id"],
            "segment_id": tenant["segment"]["id"], "campaign_id": tenant["campaign"]["id"],
            "surprise_id": tenant["surprise"]["id"], "offer_id": tenant["offer"]["id"],
            "challenge_id": tenant["challenge"]["id"]}


def write_bodies(tenant: dict) -> dict:
    """Valid request bodies per endpoint, carrying the tenant's ids where the body names an object."""
    return {
        "programs.update_program": {"json": {"name": "Taken over"}},
        "programs.create_reward": {"json": {"name": "Planted reward", "points_cost": 10}},
        "programs.upload_image": {"data": {"file": (BytesIO(make_png()), "logo.png")},
                                  "content_type": "multipart/form-data"},
        "members.enroll": {"json": {"name": "Planted member"}},
        "members.earn": {"json": {"points": 1000}},
        "members.redeem": {"json": {"reward_id": tenant["reward"]["id"]}},
        "members.reverse": {"json": {}},
        "members.adjust": {"json": {"points": 500, "reason": "Planted credit"}},
        "members.bonus_event": {"json": {"kind": "review"}},
        "members.record_membership": {"json": {"tier_id": tenant["program"]["tiers"][-1]["id"], "amount": "10.00",
                                               "ends_at": "2099-01-01T00:00:00Z"}},
        "members.tier_override": {"json": {"tier_id": tenant["program"]["tiers"][-1]["id"],
                                           "until": "2099-01-01T00:00:00Z"}},
        "checkout.lookup": {"json": {"barcode": tenant["member"]["barcode_value"]}},
        "fcm.register_device": {"json": {"token": "fcm-token-of-the-rival-0001", "platform": "android"}},
        "checkout.place_hold": {"json": {"barcode": tenant["member"]["barcode_value"], "points": 10}},
        "checkout.capture_hold": {"json": {}},
        "checkout.void_hold": {"json": {}},
        "webhooks.replay": {},
        "member_admin.update_member": {"json": {"name": "Renamed by a rival"}},
        "rewards.update_reward": {"json": {"points_cost": 1, "active": False}},
        "checkout.enrol_at_counter": {"json": {"program_id": tenant["program"]["id"], "name": "Planted member"}},
        "engagement.create_survey": {"json": {"title": "Planted", "questions": [{"kind": "text", "text": "?"}]}},
        "engagement.update_survey": {"json": {"active": False}},
        "engagement.send_survey": {"json": {"member_id": tenant["member"]["id"]}},
        "campaigns.create_segment": {"json": {"name": "Planted", "rules": {"conditions": [
            {"field": "points_balance", "op": "gte", "value": 0}]}}},
        "campaigns.update_segment": {"json": {"name": "Taken over"}},
        "campaigns.create_campaign": {"json": {"name": "Planted", "segment_id": tenant["segment"]["id"],
                                               "message": {"title": "t", "body": "b"}}},
        "campaigns.schedule_campaign": {"json": {"send_at": "2098-01-01T00:00:00Z"}},
        "campaigns.cancel_campaign": {},
        "campaigns.redeem_offer": {"json": {"member_id": tenant["member"]["id"]}},
        "campaigns.give_surprise": {"json": {"segment_id": tenant["segment"]["id"], "sample_size": 1, "points": 5}},
        "campaigns.set_tags": {"json": {"tags": ["planted"]}},
        "locations.put_locations": {"json": {"locations": [{"name": "Planted", "latitude": 1, "longitude": 2}]}},
        "offers.create_offer": {"json": {"name": "Planted offer", "kind": "default", "texts": {"en": "Planted"}}},
        "offers.update_offer": {"json": {"texts": {"en": "Taken over"}}},
        "challenges.create_challenge": {"json": {"name": "Planted", "goal": "visits", "target": 1, "window": "month",
                                                 "reward_points": 1000}},
        "challenges.update_challenge": {"json": {"target": 1, "reward_points": 1000}},
        "challenges.set_leaderboard": {"json": {"opt_in": True, "display_name": "Rival"}},
    }


def call_with_ids_of(client, key: str, method: str, rule, tenant: dict):
    ids = tenant_ids(tenant)
    missing = [name for name in rule.arguments if name not in ids]
    assert not missing, f"{rule.rule}: add a value for {missing} to tenant_ids()"
    path = client.application.url_map.bind("localhost").build(rule.endpoint, {n: ids[n] for n in rule.arguments},
                                                              method=method)
    body = {}
    if method in ("POST", "PUT", "PATCH"):
        bodies = write_bodies(tenant)
        assert rule.endpoint in bodies, f"{method} {rule.rule}: add a valid body to write_bodies()"
        body = bodies[rule.endpoint]
    return client.open(path, method=method, headers=auth(key, str(uuid.uuid4())), **body)


def isolation_failures(method: str, path: str, response, tenant: dict) -> list[str]:
    text = response.get_data().decode(errors="replace")  # a leaked pass would be binary
    where = f"{method} {path}"
    failures = []
    if response.status_code != 404:
        failures.append(f"{where}: {response.status_code}, expected 404: {text[:300]}")
    if response.mimetype != "application/problem+json":
        failures.append(f"{where}: {response.mimetype}, expected application/problem+json")
    for secret in (tenant["member"]["name"], tenant["member"]["barcode_value"], tenant["reward"]["name"]):
        if secret in text:
            failures.append(f"{where}: the response shows {secret!r} of another merchant")
    return failures


def snapshot(client, tenant: dict) -> dict:
    headers = auth(tenant["key"])
    member = client.get(f"/api/v1/members/{tenant['member']['id']}", headers=headers).get_json()
    program = client.get(f"/api/v1/programs/{tenant['program']['id']}", headers=headers).get_json()
    statement = client.get(f"/api/v1/members/{tenant['member']['id']}/transactions", headers=headers).get_json()
    hold = client.get(f"/api/v1/checkout/holds/{tenant['hold']['id']}", headers=headers).get_json()
    hooks = client.get("/api/v1/webhooks", headers=headers).get_json()["data"]
    surveys = client.get(f"/api/v1/programs/{tenant['program']['id']}/surveys", headers=headers).get_json()["data"]
    offers = client.get(f"/api/v1/programs/{tenant['program']['id']}/offers", headers=headers).get_json()["data"]
    places = client.get(f"/api/v1/programs/{tenant['program']['id']}/locations", headers=headers).get_json()
    return {"surveys": [(survey["id"], survey["active"]) for survey in surveys],
            "balance": member["points_balance"], "lifetime": member["lifetime_points"], "name": member["name"],
            "held": member["held_points"], "hold": hold["status"], "webhooks": [hook["id"] for hook in hooks],
            "program": program["name"], "rewards": [r["id"] for r in program["rewards"]],
            "images": program["images"], "transactions": [t["id"] for t in statement["data"]],
            "offers": [(o["id"], o["active"], o["texts"]) for o in offers], "locations": places}
