"""The outbox: what must reach devices is committed with the ledger entry, and nothing is lost when Redis is
down."""

import json
import os
import time

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import select

import workers.jobs
from app import create_app
from app.config import load_config
from app.models import OutboxEvent
from app.services import services
from tests.factories import auth, earn, make_member, make_merchant, make_program, redeem
from tests.fakes.webhooks import FakeWebhookReceiver
from tests.workers.test_wallet_push import Device, _pending_events
from workers.queue import (
    BATCH_JOB,
    BATCH_QUEUED,
    FANOUT_QUEUE_NAME,
    QUEUE_NAME,
    RQDispatcher,
    connect_rq,
    sweep_outbox,
)
from workers.webhooks import close_senders

REDIS_URL = os.environ.get("PUNCHPASS_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="set PUNCHPASS_TEST_REDIS_URL (.ci/run does) for rq tests")


def _events(app, member_id) -> list[OutboxEvent]:
    with services(app).sessions() as session:
        return list(session.scalars(select(OutboxEvent).where(OutboxEvent.member_id == member_id)))


def test_earn_writes_one_push_event_and_a_refused_redeem_writes_none(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"])
    assert _events(app, member["id"]) == []  # a brand-new card has no device to push to
    Device(client, client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data).register()
    earn(client, key, member["id"], points=10)
    assert redeem(client, key, member["id"], points=11).status_code == 409
    events = _events(app, member["id"])
    assert [(e.kind, e.payload["pass_version"]) for e in events] == [("apple_push", 2)]


def test_an_earn_on_a_card_without_devices_writes_no_push_event(app, client):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    assert earn(client, key, member["id"], points=10).status_code == 201
    assert _events(app, member["id"]) == []


@pytest.fixture
def redis_app(test_env, fake_apns, cert_chain, monkeypatch):
    """An app whose REDIS_URL is a dead port: the state of a deployment while Redis restarts."""
    env = {**test_env, "REDIS_URL": "redis://127.0.0.1:1/0", "APNS_BASE_URL": fake_apns.base_url,
           "APNS_CA_FILE": str(cert_chain["root_ca"])}
    app = create_app(load_config(env), testing=True)
    connect_rq(app)  # as wsgi.py does
    monkeypatch.setattr(workers.jobs, "_worker_app", app)  # the rq job runs with this app, as in `punchpass worker`
    yield app
    services(app).engine.dispose()


@needs_redis
def test_with_redis_down_earn_succeeds_and_the_push_arrives_once_redis_is_back(redis_app, fake_apns):
    client = redis_app.test_client()
    _, key = make_merchant(redis_app)
    member = make_member(client, key, make_program(client, key)["id"])
    device = _register_a_device(client, key, member)
    started = time.monotonic()
    assert earn(client, key, member["id"], points=25).status_code == 201
    assert time.monotonic() - started < 2  # a dead Redis does not hang the till
    assert _pending_events(redis_app, member["id"]) == 1

    live = _empty_queues(RQDispatcher(REDIS_URL))
    services(redis_app).relay.connect(live)
    assert sweep_outbox(redis_app, live) >= 1
    SimpleWorker([live.queue, FANOUT_QUEUE_NAME], connection=live.redis).work(burst=True)
    assert _pending_events(redis_app, member["id"]) == 0
    assert device.push_token in {p.token for p in fake_apns.pushes}


@needs_redis
def test_relay_enqueues_one_batch_job_for_a_burst_of_commits(redis_app):
    live = _empty_queues(RQDispatcher(REDIS_URL))
    services(redis_app).relay.connect(live)
    client = redis_app.test_client()
    _, key = make_merchant(redis_app)
    members = [make_member(client, key, make_program(client, key)["id"]) for _ in range(3)]
    for member in members:
        _register_a_device(client, key, member)
        earn(client, key, member["id"], points=1)
    assert all(len(_events(redis_app, member["id"])) == 1 for member in members)
    [job] = live.queue.get_jobs()
    assert job.func_name == BATCH_JOB and live.queue.name == QUEUE_NAME


@needs_redis
def test_an_earn_on_a_card_without_devices_enqueues_nothing(redis_app):
    live = _empty_queues(RQDispatcher(REDIS_URL))
    services(redis_app).relay.connect(live)
    client = redis_app.test_client()
    _, key = make_merchant(redis_app)
    member = make_member(client, key, make_program(client, key)["id"])
    assert earn(client, key, member["id"], points=1).status_code == 201
    assert live.queue.count == 0


def _register_a_device(client, key, member) -> Device:
    device = Device(client, client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data)
    assert device.register().status_code == 201
    return device


def _empty_queues(dispatcher: RQDispatcher) -> RQDispatcher:
    dispatcher.queue.empty()
    Queue(FANOUT_QUEUE_NAME, connection=dispatcher.redis).empty()
    dispatcher.redis.delete(BATCH_QUEUED)
    return dispatcher


@needs_redis
def test_a_fan_out_whose_job_failed_is_handed_over_again(redis_app):
    """A worker killed mid-fan-out leaves a failed job under the event's job id for a day; the sweep must still
    be able to enqueue the event again, or the design change would reach no device until then."""
    from rq import Queue
    from rq.job import JobStatus

    from workers.queue import FANOUT_QUEUE_NAME, enqueue_fanouts
    live = RQDispatcher(REDIS_URL)
    queue = Queue(FANOUT_QUEUE_NAME, connection=live.redis)
    queue.empty()
    enqueue_fanouts(queue, [987654321])
    job = queue.fetch_job("outbox-987654321")
    job.set_status(JobStatus.FAILED)
    queue.remove(job)

    enqueue_fanouts(queue, [987654321])

    assert queue.fetch_job("outbox-987654321").get_status() == JobStatus.QUEUED
    assert "outbox-987654321" in queue.job_ids
    queue.empty()


@pytest.fixture
def redis_hook_app(test_env, cert_chain, monkeypatch):
    """As redis_app (Redis down at first), allowed to send webhooks to loopback."""
    env = {**test_env, "REDIS_URL": "redis://127.0.0.1:1/0", "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "on"}
    app = create_app(load_config(env), testing=True)
    connect_rq(app)
    monkeypatch.setattr(workers.jobs, "_worker_app", app)
    yield app
    close_senders()
    services(app).engine.dispose()


@needs_redis
def test_with_redis_down_a_webhook_arrives_once_redis_is_back_through_one_batch_job(redis_hook_app):
    client = redis_hook_app.test_client()
    _, key = make_merchant(redis_hook_app)
    member = make_member(client, key, make_program(client, key)["id"])
    with FakeWebhookReceiver() as receiver:
        hook = client.post("/api/v1/webhooks", json={"url": receiver.url(), "events": ["points.earned"]},
                           headers=auth(key)).get_json()
        receiver.secret = hook["secret"]
        for points in (3, 4):
            assert earn(client, key, member["id"], points=points).status_code == 201  # Redis is down
        live = _empty_queues(RQDispatcher(REDIS_URL))
        services(redis_hook_app).relay.connect(live)
        assert sweep_outbox(redis_hook_app, live) >= 2
        SimpleWorker([live.queue], connection=live.redis).work(burst=True)  # the batch job, then the webhook job
        assert sorted(json.loads(r.body)["data"]["points"] for r in receiver.received) == [3, 4]
        assert all(r.signature_ok for r in receiver.received)
