"""Webhook delivery end to end, against the loopback receiver (tests/fakes/webhooks.py): signed, retried with
backoff until the receiver answers 2xx, dead after 24 h and replayable, every attempt listed, and never sent to
a link-local or metadata address, whatever the name resolves to."""

from __future__ import annotations

import json
import re
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import event, select

from app import create_app
from app.config import load_config
from app.domain.webhooks import RETRY_WINDOW
from app.models import WebhookDelivery
from app.services import services
from tests.conftest import fresh_database
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program
from tests.fakes.webhooks import FakeWebhookReceiver
from workers import webhooks as webhook_worker
from workers.jobs import deliver_due_webhooks, deliver_everything_due

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify():
    """The verification snippet of README.md's "Webhooks" section, as a receiver would paste it."""
    section = README.read_text().split("## Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 (our own README)
    return namespace["verify"]


@pytest.fixture(scope="module")
def hook_app(test_env, tmp_path_factory):
    """An app on its own database (it delivers every due event there) that may send to loopback."""
    with fresh_database(tmp_path_factory) as url:
        env = {**test_env, "DATABASE_URL": url, "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "on"}
        app = create_app(load_config(env), testing=True)
        yield app
        services(app).engine.dispose()


@pytest.fixture
def hook_client(hook_app):
    return hook_app.test_client()


@pytest.fixture(autouse=True)
def close_connections():
    yield
    webhook_worker.close_senders()


@pytest.fixture
def receiver():
    with FakeWebhookReceiver() as fake:
        yield fake


def deliver_all(app) -> None:
    """Run the worker until nothing is due: a fan-out writes attempts that are due at once."""
    for _ in range(5):
        if not deliver_everything_due(app):
            return


def subscribe(client, key: str, url: str, events=("points.earned",)) -> dict:
    response = client.post("/api/v1/webhooks", json={"url": url, "events": list(events)}, headers=auth(key))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def attempts(client, key: str, webhook_id: int) -> list[dict]:
    response = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def shop(app, client, receiver, events=("points.earned",)):
    _, key = make_merchant(app)
    webhook = subscribe(client, key, receiver.url(), events)
    receiver.secret = webhook["secret"]
    member = make_member(client, key, make_program(client, key)["id"])
    return key, webhook, member


def test_a_first_500_is_retried_with_backoff_then_delivered_signed(hook_app, hook_client, receiver):
    key, webhook, member = shop(hook_app, hook_client, receiver)
    receiver.answers = [500]
    earned = earn(hook_client, key, member["id"], points=40).get_json()
    deliver_all(hook_app)
    first = attempts(hook_client, key, webhook["id"])
    assert [(a["status_code"], a["delivery_status"]) for a in first] == [(500, "pending")]
    retry_at = datetime.fromisoformat(first[0]["next_retry_at"])
    assert timedelta(seconds=25) < retry_at - datetime.fromisoformat(first[0]["attempted_at"]) <= timedelta(seconds=31)

    deliver_all(hook_app)  # not due yet: nothing is sent
    assert len(receiver.received) == 1
    with time_machine.travel(retry_at + timedelta(seconds=1), tick=True):
        deliver_all(hook_app)
    assert [r.status for r in receiver.received] == [500, 200]
    listed = attempts(hook_client, key, webhook["id"])
    assert [(a["status_code"], a["delivery_status"], a["next_retry_at"]) for a in listed] == [
        (200, "delivered", None), (500, "delivered", first[0]["next_retry_at"])]

    sent = receiver.received[1]
    assert sent.signature_ok and sent.body == receiver.received[0].body  # the same bytes, signed again
    assert readme_verify()(webhook["secret"], sent.headers["Punchpass-Signature"], sent.body)
    assert not readme_verify()("whsec_wrong", sent.headers["Punchpass-Signature"], sent.body)
    body = json.loads(sent.body)
    assert set(body) == {"id", "type", "created_at", "data"} and body["type"] == "points.earned"
    assert sent.headers["Punchpass-Event-Id"] == body["id"] == listed[0]["event_id"]
    assert body["data"]["member_id"] == member["id"] and body["data"]["points"] == 40
    assert body["data"]["points_balance"] == 40 and body["data"]["available_points"] == 40
    assert body["data"]["transaction_id"] == earned["transaction"]["id"] and body["data"]["tier"] == "Bronze"


def test_an_old_timestamp_fails_the_readme_check(receiver):
    signature = webhook_worker.signature("whsec_x", b"{}", int(datetime.now(timezone.utc).timestamp()) - 301)
    assert not readme_verify()("whsec_x", signature, b"{}")
    assert readme_verify()("whsec_x", webhook_worker.signature("whsec_x", b"{}", int(datetime.now().timestamp())),
                           b"{}")


def test_a_delivery_is_dead_after_24_hours_and_can_be_replayed(hook_app, hook_client, receiver):
    key, webhook, member = shop(hook_app, hook_client, receiver)
    receiver.default_status = 503
    earn(hook_client, key, member["id"], points=5)
    deliver_all(hook_app)
    start = datetime.fromisoformat(attempts(hook_client, key, webhook["id"])[0]["attempted_at"])
    for _ in range(60):
        latest = attempts(hook_client, key, webhook["id"])[0]
        if latest["next_retry_at"] is None:
            break
        with time_machine.travel(datetime.fromisoformat(latest["next_retry_at"]) + timedelta(seconds=1), tick=True):
            deliver_all(hook_app)
    listed = attempts(hook_client, key, webhook["id"])
    assert {a["delivery_status"] for a in listed} == {"dead"} and listed[0]["next_retry_at"] is None
    last = datetime.fromisoformat(listed[0]["attempted_at"])
    # the last one at the window's end; the window opened when the event was written, a moment before the first
    # attempt (how long a moment depends on the machine's load)
    assert RETRY_WINDOW - timedelta(seconds=5) <= last - start <= RETRY_WINDOW + timedelta(seconds=5)
    assert 20 <= len(listed) <= 40 and all(a["status_code"] == 503 for a in listed)
    gaps = [datetime.fromisoformat(a["attempted_at"]) for a in reversed(listed)]
    assert gaps[2] - gaps[1] > gaps[1] - gaps[0]  # backing off

    receiver.default_status = 200
    delivery_id = listed[0]["delivery_id"]
    replay_path = f"/api/v1/webhooks/{webhook['id']}/deliveries/{delivery_id}/replay"
    with time_machine.travel(last + timedelta(hours=2), tick=True):
        replayed = hook_client.post(replay_path, headers=auth(key))
        assert replayed.status_code == 202, replayed.get_json()
        assert replayed.get_json()["status"] == "pending"
        assert_problem(hook_client.post(replay_path, headers=auth(key)), 409)  # still pending
        deliver_all(hook_app)
    newest = attempts(hook_client, key, webhook["id"])[0]
    assert (newest["status_code"], newest["delivery_status"]) == (200, "delivered")
    assert receiver.received[-1].signature_ok and receiver.received[-1].body == receiver.received[0].body


def test_one_delivery_per_event_and_webhook(hook_app, hook_client, receiver):
    key, webhook, member = shop(hook_app, hook_client, receiver, events=("points.earned", "points.redeemed"))
    with FakeWebhookReceiver() as other:
        second = subscribe(hook_client, key, other.url(), ["points.redeemed"])
        other.secret = second["secret"]
        earn(hook_client, key, member["id"], points=50)
        hook_client.post(f"/api/v1/members/{member['id']}/redeem", json={"points": 20}, headers=auth(key))
        deliver_all(hook_app)
        deliver_all(hook_app)  # nothing twice
        assert [json.loads(r.body)["type"] for r in receiver.received] == ["points.earned", "points.redeemed"]
        assert [json.loads(r.body)["type"] for r in other.received] == ["points.redeemed"]
        assert json.loads(other.received[0].body)["id"] == json.loads(receiver.received[1].body)["id"]
        assert all(r.signature_ok for r in receiver.received + other.received)


def test_a_redirect_is_not_followed(hook_app, hook_client, receiver):
    with FakeWebhookReceiver() as elsewhere:
        key, webhook, member = shop(hook_app, hook_client, receiver)
        receiver.answers, receiver.redirect_to = [302], elsewhere.url()
        earn(hook_client, key, member["id"], points=5)
        deliver_all(hook_app)
        [attempt] = attempts(hook_client, key, webhook["id"])
        assert attempt["status_code"] == 302 and "not followed" in attempt["error"]
        assert attempt["delivery_status"] == "pending" and elsewhere.received == []


@pytest.fixture
def dns(monkeypatch):
    """What host names resolve to: DNS is the outside world here, so the test answers for it."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.mark.parametrize("resolved", [["169.254.169.254"], ["::ffff:169.254.169.254"], ["fe80::1"],
                                      ["fd00:ec2::254"], ["127.0.0.1", "169.254.169.254"]])
def test_a_name_resolving_to_a_metadata_address_is_never_contacted(hook_app, hook_client, receiver, dns, resolved):
    dns["hooks.example.test"] = resolved
    key, webhook, member = shop(hook_app, hook_client, receiver)
    hook_client.delete(f"/api/v1/webhooks/{webhook['id']}", headers=auth(key))
    webhook = subscribe(hook_client, key, receiver.url(host="hooks.example.test"))
    earn(hook_client, key, member["id"], points=5)
    deliver_all(hook_app)
    [attempt] = attempts(hook_client, key, webhook["id"])
    assert attempt["status_code"] is None and "link-local or metadata" in attempt["error"]
    assert receiver.received == []


def test_a_resolved_name_is_connected_by_its_checked_address_with_host_and_sni(
        hook_app, hook_client, dns, cert_chain, monkeypatch):
    dns["localhost"] = ["127.0.0.1"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_chain["root_ca"]))
    monkeypatch.setattr(webhook_worker, "_senders", {})  # a sender that reads REQUESTS_CA_BUNDLE
    with FakeWebhookReceiver(tls=(str(cert_chain["server_cert"]), str(cert_chain["server_key"]))) as tls_receiver:
        key, webhook, member = shop(hook_app, hook_client, tls_receiver)
        hook_client.delete(f"/api/v1/webhooks/{webhook['id']}", headers=auth(key))
        webhook = subscribe(hook_client, key, tls_receiver.url(host="localhost"))
        tls_receiver.secret = webhook["secret"]
        earn(hook_client, key, member["id"], points=5)
        deliver_all(hook_app)
        webhook_worker.close_senders()
    [sent] = tls_receiver.received
    assert sent.signature_ok and sent.sni == "localhost" and sent.headers["Host"] == f"localhost:{tls_receiver.port}"


def test_the_secret_is_never_logged_listed_or_stored_in_clear(hook_app, hook_client, receiver, caplog):
    caplog.set_level("DEBUG")
    key, webhook, member = shop(hook_app, hook_client, receiver)
    receiver.answers = [500]
    earn(hook_client, key, member["id"], points=5)
    deliver_all(hook_app)
    listed = hook_client.get("/api/v1/webhooks", headers=auth(key))
    deliveries = hook_client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries", headers=auth(key))
    secret = webhook["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert listed.get_json()["data"][0]["id"] == webhook["id"] and "secret" not in listed.get_json()["data"][0]
    assert secret not in listed.get_data(as_text=True) + deliveries.get_data(as_text=True)
    assert secret not in caplog.text and "webhook" in caplog.text  # the retry was logged, without it
    with services(hook_app).engine.connect() as connection:
        for table in ("webhook_endpoints", "webhook_deliveries", "webhook_attempts", "outbox_events",
                      "idempotency_records"):
            assert secret not in json.dumps([list(map(str, row)) for row in
                                             connection.exec_driver_sql(f"SELECT * FROM {table}")])


def test_deleting_a_webhook_stops_its_deliveries(hook_app, hook_client, receiver):
    key, webhook, member = shop(hook_app, hook_client, receiver)
    earn(hook_client, key, member["id"], points=5)
    assert hook_client.delete(f"/api/v1/webhooks/{webhook['id']}", headers=auth(key)).status_code == 204
    deliver_all(hook_app)
    assert receiver.received == []
    assert_problem(hook_client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries", headers=auth(key)), 404)
    with services(hook_app).sessions() as session:
        assert session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook["id"])).all() == []


def test_a_fan_out_job_makes_the_first_attempts_itself(hook_app, hook_client, receiver):
    key, webhook, member = shop(hook_app, hook_client, receiver)
    for points in (1, 2, 3):
        earn(hook_client, key, member["id"], points=points)
    outcomes = deliver_due_webhooks(hook_app)  # one call: fanned out, then attempted by the same job
    assert outcomes["delivered"] == 6 and len(receiver.received) == 3  # 3 fan-outs, 3 deliveries
    assert all(r.signature_ok for r in receiver.received)


def test_a_silent_receiver_loses_nothing_and_is_not_hammered(hook_app, hook_client):
    _, key = make_merchant(hook_app)
    with FakeWebhookReceiver() as gone:
        url = gone.url()
    webhook = subscribe(hook_client, key, url)  # nothing listens there any more
    member = make_member(hook_client, key, make_program(hook_client, key)["id"])
    for points in (1, 2, 3):
        earn(hook_client, key, member["id"], points=points)
    deliver_due_webhooks(hook_app)
    [tried] = attempts(hook_client, key, webhook["id"])  # one connection refused; the other two wait, untried
    assert tried["status_code"] is None and tried["delivery_status"] == "pending" and tried["next_retry_at"]
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(minutes=2), tick=True):
        deliver_due_webhooks(hook_app)  # still down: one more try, the rest wait again
        assert len(attempts(hook_client, key, webhook["id"])) == 2
        with services(hook_app).sessions() as session:
            pending = session.scalars(select(WebhookDelivery.status).where(
                WebhookDelivery.webhook_id == webhook["id"])).all()
    assert pending == ["pending"] * 3  # nothing lost


def test_webhook_statements_per_delivery_stay_few(hook_app, hook_client, receiver):
    key, webhook, member = shop(hook_app, hook_client, receiver)
    for points in range(1, 21):
        earn(hook_client, key, member["id"], points=points)
    statements = []
    engine = services(hook_app).engine
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        deliver_due_webhooks(hook_app)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(receiver.received) == 20
    assert len(statements) <= 30, len(statements)  # was about 20 a delivery, one lease and commit at a time
