"""Card pushes go out in batches: one lease, one read of the tokens, one push_many, one UPDATE for the delivered,
however many earns are due."""

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from app.services import services
from tests.factories import earn, make_merchant, make_program
from tests.workers.test_wallet_push import _event, _event_ids, _pending_events, _redesign, new_device
from workers import jobs, wallet_push
from workers.apns import APNsClient


@pytest.fixture
def shop(live_app):
    client = live_app.test_client()
    _, key = make_merchant(live_app)
    return client, key, make_program(client, key)


@contextmanager
def statements(app):
    """Every SQL statement the app's engine runs inside the block."""
    seen: list[str] = []
    def record(_conn, _cursor, statement, *_):
        seen.append(" ".join(statement.split()))
    engine = services(app).engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_burst_of_earns_on_many_cards_is_delivered_by_one_batch_with_one_lease(live_app, shop, fake_apns,
                                                                                  monkeypatch):
    client, key, program = shop
    cards = [new_device(client, key, program) for _ in range(5)]
    for member, _ in cards:
        assert earn(client, key, member["id"], points=3).status_code == 201
    calls = []
    original = APNsClient.push_many
    monkeypatch.setattr(APNsClient, "push_many", lambda self, tokens, topic: calls.append(tokens) or
                        original(self, tokens, topic))
    before = len(fake_apns.pushes)

    with statements(live_app) as seen:
        outcomes = jobs.deliver_pushes(live_app)

    ours = [_event_ids(live_app, member["id"])[-1] for member, _ in cards]
    assert all(outcomes[event_id] == "delivered" for event_id in ours)
    updates = [s for s in seen if s.startswith("UPDATE outbox_events")]
    [lease] = [s for s in updates if "RETURNING" in s]
    assert "delivered_at IS NULL" in lease
    assert len([s for s in updates if s.startswith("UPDATE outbox_events SET delivered_at")]) == 1
    assert len([s for s in seen if s.startswith("SELECT") and "FROM device_registrations" in s]) == 1
    assert len(calls) == 1
    pushed = [push.token for push in fake_apns.pushes[before:]]
    assert all(pushed.count(device.push_token) == 1 for _, device in cards)
    assert all(_pending_events(live_app, member["id"]) == 0 for member, _ in cards)
    assert all(_event(live_app, event_id).leased_by is None for event_id in ours)


def test_only_the_newest_version_of_a_card_is_pushed_and_its_older_events_are_done(live_app, shop, fake_apns):
    client, key, program = shop
    member, device = new_device(client, key, program)
    for points in (1, 2, 3):
        earn(client, key, member["id"], points=points)
    events = _event_ids(live_app, member["id"])[-3:]
    before = len(fake_apns.pushes)

    outcomes = jobs.deliver_pushes(live_app, events)

    assert [outcomes[event_id] for event_id in events] == ["delivered"] * 3
    assert [push.token for push in fake_apns.pushes[before:]] == [device.push_token]
    assert _pending_events(live_app, member["id"]) == 0


def test_a_batch_retries_only_the_card_whose_device_answered_500(live_app, shop, fake_apns):
    client, key, program = shop
    (steady, _), (shaky, flaky) = new_device(client, key, program), new_device(client, key, program)
    fake_apns.respond(flaky.push_token, 500, "InternalServerError", times=1)
    for member in (steady, shaky):
        earn(client, key, member["id"], points=1)
    events = [_event_ids(live_app, member["id"])[-1] for member in (steady, shaky)]

    assert jobs.deliver_pushes(live_app, events) == {events[0]: "delivered", events[1]: "retry"}
    retried = _event(live_app, events[1])
    assert retried.payload["owed"] and "500" in retried.last_error and retried.leased_by is None


def test_a_card_push_goes_out_between_the_batches_of_a_program_fan_out(live_app, shop, fake_apns, monkeypatch):
    monkeypatch.setattr(wallet_push, "FANOUT_BATCH", 2)
    client, key, program = shop
    devices = [new_device(client, key, program) for _ in range(5)]
    ours = {device.push_token for _, device in devices}
    member, device = devices[4]
    first_batch = {devices[0][1].push_token, devices[1][1].push_token}
    original = APNsClient.push_many

    def push_many(self, tokens, topic):
        if set(tokens) == first_batch:  # the till earns while the fan-out pushes its first batch
            assert earn(client, key, member["id"], points=1).status_code == 201
        return original(self, tokens, topic)
    monkeypatch.setattr(APNsClient, "push_many", push_many)
    fanout = _redesign(live_app, client, key, program)
    before = len(fake_apns.pushes)

    assert jobs.deliver_event(live_app, fanout) == "delivered"

    pushed = [push.token for push in fake_apns.pushes[before:] if push.token in ours]
    assert pushed[:3] == [devices[0][1].push_token, devices[1][1].push_token, device.push_token]
    assert pushed.count(device.push_token) == 2  # its earn's push, then the fan-out's last batch
    assert _pending_events(live_app, member["id"]) == 0
