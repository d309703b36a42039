"""The webhooks API: admin only, URLs checked at registration (422 naming `url`), secrets shown once, events
emitted where they happen, and the earn path of a merchant without webhooks untouched."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select, text

from app import create_app
from app.config import load_config
from app.domain.webhook_subscriptions import subscriptions
from app.models import Member, OutboxEvent
from app.services import db_session, services
from tests.app.test_statements import statements, write_statements
from tests.factories import (
    assert_problem,
    auth,
    earn,
    make_api_key,
    make_member,
    make_merchant,
    make_program,
    make_reward,
    redeem,
)

ALL_EVENTS = ["member.enrolled", "points.earned", "points.redeemed", "points.reversed", "tier.changed",
              "reward.redeemed", "pass.installed", "pass.removed"]


def create(client, key, url="https://hooks.example.com/punchpass", events=("points.earned",)):
    return client.post("/api/v1/webhooks", json={"url": url, "events": list(events)}, headers=auth(key))


def webhook_events(app, merchant_id: int) -> list[str]:
    with app.app_context():
        rows = db_session().scalars(select(OutboxEvent).where(OutboxEvent.kind == "webhook")
                                    .order_by(OutboxEvent.id)).all()
        return [row.payload["event"]["type"] for row in rows if row.payload["merchant_id"] == merchant_id]


def test_create_list_delete(app, client):
    _, key = make_merchant(app)
    created = create(client, key, events=["points.earned", "tier.changed", "points.earned"])
    assert created.status_code == 201
    body = created.get_json()
    assert body["events"] == ["points.earned", "tier.changed"] and body["secret"].startswith("whsec_")
    listed = client.get("/api/v1/webhooks", headers=auth(key)).get_json()["data"]
    assert listed == [{"id": body["id"], "url": body["url"], "events": body["events"],
                       "created_at": body["created_at"]}]
    assert client.delete(f"/api/v1/webhooks/{body['id']}", headers=auth(key)).status_code == 204
    assert client.get("/api/v1/webhooks", headers=auth(key)).get_json()["data"] == []
    assert_problem(client.delete(f"/api/v1/webhooks/{body['id']}", headers=auth(key)), 404)


def test_a_till_key_may_not_touch_webhooks(app, client):
    merchant_id, _ = make_merchant(app)
    till = make_api_key(app, merchant_id, "pos")
    assert_problem(create(client, till), 403)
    assert_problem(client.get("/api/v1/webhooks", headers=auth(till)), 403)


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data", "https://[::ffff:169.254.169.254]/", "https://[::ffff:a9fe:a9fe]/",
    "https://[fe80::1]/", "https://[fd00:ec2::254]/", "http://hooks.example.com/", "https://127.0.0.1/",
    "https://10.1.2.3/", "https://[::1]/", "https://localhost/", "https://user:pw@hooks.example.com/",
    "ftp://hooks.example.com/", "https://", "not a url", "https://0.0.0.0/"])
def test_unusable_urls_are_422_naming_url(app, client, url):
    _, key = make_merchant(app)
    assert "url" in assert_problem(create(client, key, url=url), 422)["errors"]


@pytest.mark.parametrize("url", ["https://169.254.169.254/", "https://[::ffff:169.254.1.1]/", "https://[fe80::9]/",
                                 "https://[fd00:ec2::254]/", "https://[fd20:ce::254]/", "https://100.100.100.200/",
                                 "https://[64:ff9b:1::a9fe:a9fe]/", "https://[2002:a9fe:a9fe::1]/",
                                 "https://[::a9fe:a9fe]/"])
def test_metadata_addresses_are_refused_even_when_private_targets_are_allowed(test_env, url):
    app = create_app(load_config({**test_env, "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "on"}), testing=True)
    try:
        client = app.test_client()
        _, key = make_merchant(app)
        assert "url" in assert_problem(create(client, key, url=url), 422)["errors"]
        assert create(client, key, url="http://127.0.0.1:8080/hooks").status_code == 201
    finally:
        services(app).engine.dispose()


def test_unknown_event_types_are_422_naming_events(app, client):
    _, key = make_merchant(app)
    assert "events.0" in assert_problem(create(client, key, events=["points.teleported"]), 422)["errors"]
    assert "events" in assert_problem(create(client, key, events=[]), 422)["errors"]


def test_events_are_emitted_where_they_happen(app, client):
    merchant_id, key = make_merchant(app)
    assert create(client, key, events=ALL_EVENTS).status_code == 201
    program = make_program(client, key)
    reward = make_reward(client, key, program["id"], points_cost=100)
    member = make_member(client, key, program["id"])
    earned = earn(client, key, member["id"], points=600).get_json()  # Bronze -> Gold
    redeem(client, key, member["id"], reward_id=reward["id"])
    client.post(f"/api/v1/transactions/{earned['transaction']['id']}/reverse", json={"points": 200},
                headers=auth(key, str(uuid.uuid4())))  # back below Gold
    assert webhook_events(app, merchant_id) == [
        "member.enrolled", "tier.changed", "points.earned", "points.redeemed", "reward.redeemed", "tier.changed",
        "points.reversed"]


def test_wallet_installs_are_the_first_registration_and_the_last_one_gone(app, client):
    merchant_id, key = make_merchant(app)
    assert create(client, key, events=["pass.installed", "pass.removed"]).status_code == 201
    member = make_member(client, key, make_program(client, key)["id"])
    with app.app_context():
        row = db_session().get(Member, member["id"])
        serial, token = row.serial_number, row.auth_token
    headers = {"Authorization": f"ApplePass {token}"}
    base = f"/wallet/v1/devices/{{}}/registrations/{services(app).config.apple.pass_type_id}/{serial}"
    for device in ("phone", "watch"):
        response = client.post(base.format(device), json={"pushToken": "ab" * 32}, headers=headers)
        assert response.status_code == 201
    for device in ("phone", "watch"):
        assert client.delete(base.format(device), headers=headers).status_code == 200
    assert webhook_events(app, merchant_id) == ["pass.installed", "pass.removed"]


def test_an_earn_without_webhooks_sends_no_extra_statement_and_with_one_only_its_outbox_row(app, client):
    merchant_id, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"], points=10)
    _, other_key = make_merchant(app, "Has webhooks")
    assert create(client, other_key).status_code == 201  # another merchant's webhook changes nothing here
    earn(client, key, member["id"], points=1)  # this process re-reads the subscriptions after the change
    with statements(app) as seen:
        assert earn(client, key, member["id"], points=10).status_code == 201
    assert len(seen) <= write_statements(app), seen
    assert webhook_events(app, merchant_id) == []

    assert create(client, key).status_code == 201
    earn(client, key, member["id"], points=1)
    with statements(app) as seen:
        assert earn(client, key, member["id"], points=10).status_code == 201
    assert len(seen) <= write_statements(app) + 1, seen  # the webhook's outbox row
    assert webhook_events(app, merchant_id) == ["points.earned", "points.earned"]


def test_a_webhook_made_by_another_process_is_heard_within_seconds(app, client, test_env):
    """Another app on the same database stands for another process: its own engine, its own subscription map."""
    other = create_app(load_config(test_env), testing=True)
    try:
        merchant_id, key = make_merchant(app)
        member = make_member(client, key, make_program(client, key)["id"])
        earn(client, key, member["id"], points=1)  # this process's map is warm, without the webhook
        assert create(other.test_client(), key).status_code == 201
        deadline = time.monotonic() + 5
        while not webhook_events(app, merchant_id) and time.monotonic() < deadline:
            time.sleep(0.3)
            earn(client, key, member["id"], points=1)
        assert webhook_events(app, merchant_id) == ["points.earned"]
    finally:
        services(other).engine.dispose()


def test_an_app_shut_down_stops_polling_its_database(test_env):
    """A disposed engine's poller would go on reading a database that may be gone (tests drop theirs)."""
    app = create_app(load_config(test_env), testing=True)
    client = app.test_client()
    _, key = make_merchant(app)
    make_member(client, key, make_program(client, key)["id"])  # emits member.enrolled: the poller starts
    with app.app_context(), services(app).sessions() as session:
        poller = subscriptions(session)._poller
    assert poller is not None and poller.is_alive()
    services(app).engine.dispose()
    poller.join(timeout=5)
    assert not poller.is_alive()


def test_the_process_that_made_a_webhook_hears_it_on_its_next_request_even_after_a_stale_poll(app, client):
    """The poller may have begun a read before the webhook committed and finish it after, its version moved by
    another process's change meanwhile: that old answer must not pass for fresh in the process that made it."""
    merchant_id, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    earn(client, key, member["id"], points=1)  # the map is warm, without the webhook
    with app.app_context(), services(app).sessions() as session:
        map_ = subscriptions(session)
        stale_read = next(map_._reads)  # the poller's read begins...
        stale_version = tuple(session.execute(text("SELECT count(*) + 1, coalesce(max(id), 0) + 1000000 "
                                                   "FROM webhook_endpoints")).one())
        stale_types = dict(map_.types)
    assert create(client, key).status_code == 201
    with map_._lock:  # ...and lands now, after the commit, with another process's version
        map_.types, map_.version, map_._landed = stale_types, stale_version, stale_read
        map_.checked_at = time.monotonic()
    earn(client, key, member["id"], points=1)
    assert webhook_events(app, merchant_id) == ["points.earned"]
