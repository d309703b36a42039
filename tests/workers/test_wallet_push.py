"""The card in the wallet changes by itself: earn at the till -> APNs push -> the device fetches the new pass."""

import io
import json
import time
import uuid
import zipfile

import pytest
from sqlalchemy import select, update

from app.domain.passupdates import PROGRAM_REFRESH
from app.models import DeviceRegistration, OutboxEvent, utcnow
from app.services import services
from tests.factories import TEST_PASS_TYPE_ID, auth, earn, make_member, make_merchant, make_program
from workers import wallet_push
from workers.embedded import EmbeddedWorker
from workers.jobs import deliver_event
from workers.queue import sweep_outbox


class Device:
    """Behaves like an iPhone holding one card: registers, lists updated serials, downloads passes."""

    def __init__(self, client, pkpass: bytes):
        pass_json = _pass_json(pkpass)
        self.client, self.serial, self.token = client, pass_json["serialNumber"], pass_json["authenticationToken"]
        self.library_id, self.push_token, self.tag = uuid.uuid4().hex, uuid.uuid4().hex * 2, None

    def register(self):
        return self.client.post(self._registration_path(), json={"pushToken": self.push_token},
                                headers=self._auth())

    def unregister(self):
        return self.client.delete(self._registration_path(), headers=self._auth())

    def updated_serials(self) -> list[str]:
        query = f"?passesUpdatedSince={self.tag}" if self.tag else ""
        response = self.client.get(f"/wallet/v1/devices/{self.library_id}/registrations/{TEST_PASS_TYPE_ID}{query}")
        if response.status_code == 204:
            return []
        self.tag = response.get_json()["lastUpdated"]
        return response.get_json()["serialNumbers"]

    def fetch_pass(self) -> dict:
        response = self.client.get(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{self.serial}", headers=self._auth())
        assert response.status_code == 200
        return _pass_json(response.data)

    def _registration_path(self) -> str:
        return f"/wallet/v1/devices/{self.library_id}/registrations/{TEST_PASS_TYPE_ID}/{self.serial}"

    def _auth(self) -> dict:
        return {"Authorization": f"ApplePass {self.token}"}


@pytest.fixture
def shop(live_app):
    client = live_app.test_client()
    _, key = make_merchant(live_app)
    program = make_program(client, key)
    return client, key, program


def new_device(client, key, program, points=0):
    member = make_member(client, key, program["id"], points=points)
    pkpass = client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data
    device = Device(client, pkpass)
    assert device.register().status_code == 201
    device.updated_serials()  # the first call after adding the card lists it
    return member, device


@pytest.fixture
def worker(live_app):
    worker = EmbeddedWorker(live_app, poll_interval=0.05).start()
    yield worker
    worker.stop()


def test_earn_pushes_the_device_which_then_sees_the_new_balance(shop, fake_apns, worker):
    client, key, program = shop
    member, device = new_device(client, key, program, points=10)
    assert earn(client, key, member["id"], points=40).status_code == 201
    # Other tests' undelivered events share the database and the fake: wait for this device's push.
    deadline = time.monotonic() + 10
    while not (pushes := [p for p in fake_apns.pushes if p.token == device.push_token]):
        assert time.monotonic() < deadline, "no push reached the device"
        time.sleep(0.01)
    push = pushes[-1]
    assert push.topic == TEST_PASS_TYPE_ID and push.body == b"{}"
    assert device.updated_serials() == [device.serial]
    balance = device.fetch_pass()["storeCard"]["primaryFields"][0]
    assert balance["value"] == 50 and balance["changeMessage"] == "balance.changed"


def test_apns_410_removes_the_registration(live_app, shop, fake_apns, worker):
    client, key, program = shop
    member, device = new_device(client, key, program)
    fake_apns.respond(device.push_token, 410, "Unregistered")
    earn(client, key, member["id"], points=5)
    _wait_until(lambda: _registrations(live_app, device) == 0)


def test_unregistered_device_gets_no_more_pushes(live_app, shop, fake_apns, worker):
    client, key, program = shop
    member, device = new_device(client, key, program)
    assert device.unregister().status_code == 200
    earn(client, key, member["id"], points=5)
    _wait_until(lambda: _pending_events(live_app, member["id"]) == 0)
    assert device.push_token not in {p.token for p in fake_apns.pushes}


def test_429_is_retried_later_and_then_delivered(live_app, shop, fake_apns):
    client, key, program = shop
    member, device = new_device(client, key, program)
    fake_apns.respond(device.push_token, 429, "TooManyRequests", times=1)
    earn(client, key, member["id"], points=5)
    event_id = _last_event_id(live_app, member["id"])
    assert deliver_event(live_app, event_id) == "retry"
    event = _event(live_app, event_id)
    assert event.delivered_at is None and event.available_at > utcnow() and "429" in event.last_error
    _make_due(live_app, event_id)
    assert deliver_event(live_app, event_id) == "delivered"
    assert [p.token for p in fake_apns.pushes].count(device.push_token) == 2


def test_certificate_rejection_is_a_dead_letter_without_retries(live_app, shop, fake_apns):
    client, key, program = shop
    member, device = new_device(client, key, program)
    fake_apns.respond(device.push_token, 403, "BadCertificate")
    earn(client, key, member["id"], points=5)
    event_id = _last_event_id(live_app, member["id"])
    assert deliver_event(live_app, event_id) == "dead"
    assert deliver_event(live_app, event_id) == "not due"
    assert _event(live_app, event_id).attempts == 1


def test_a_push_for_an_old_version_is_skipped_when_a_newer_one_is_queued(live_app, shop, fake_apns):
    client, key, program = shop
    member, device = new_device(client, key, program)
    earn(client, key, member["id"], points=1)
    earn(client, key, member["id"], points=2)
    older, newer = _event_ids(live_app, member["id"])[-2:]
    before = fake_apns.push_count
    assert deliver_event(live_app, older) == "delivered"
    assert deliver_event(live_app, newer) == "delivered"
    assert [p.token for p in fake_apns.pushes[before:]].count(device.push_token) == 1


def test_branding_change_reissues_every_card_from_the_worker(live_app, shop, fake_apns):
    client, key, program = shop
    devices = [new_device(client, key, program)[1] for _ in range(3)]
    modified = client.get(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{devices[0].serial}",
                          headers=devices[0]._auth()).headers["Last-Modified"]
    before = fake_apns.push_count
    response = client.patch(f"/api/v1/programs/{program['id']}", json={"branding": {"background_color": "#112233"}},
                            headers=auth(key))
    assert response.status_code == 200
    assert fake_apns.push_count == before  # nothing is pushed inside the request
    assert sweep_outbox(live_app, lambda ids: [deliver_event(live_app, i) for i in ids]) >= 1
    pushed = {p.token for p in fake_apns.pushes}
    for device in devices:
        assert device.push_token in pushed
        assert device.updated_serials() == [device.serial]
        assert device.fetch_pass()["backgroundColor"] == "rgb(17, 34, 51)"
    refetch = client.get(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{devices[0].serial}",
                         headers={**devices[0]._auth(), "If-Modified-Since": modified})
    assert refetch.status_code == 200  # the design change is newer than what the device holds


def test_events_wait_in_the_outbox_until_a_worker_delivers_them(live_app, shop, fake_apns):
    client, key, program = shop
    member, device = new_device(client, key, program)
    earn(client, key, member["id"], points=3)
    assert _pending_events(live_app, member["id"]) == 1
    assert device.push_token not in {p.token for p in fake_apns.pushes}
    sweep_outbox(live_app, lambda ids: [deliver_event(live_app, i) for i in ids])
    assert _pending_events(live_app, member["id"]) == 0
    assert device.push_token in {p.token for p in fake_apns.pushes}


def test_program_push_beyond_one_batch_drops_the_bad_token_and_retries_only_the_500(
        live_app, shop, fake_apns, monkeypatch):
    monkeypatch.setattr(wallet_push, "FANOUT_BATCH", 2)
    client, key, program = shop
    devices = [new_device(client, key, program)[1] for _ in range(5)]
    bad, flaky = devices[1], devices[3]
    fake_apns.respond(bad.push_token, 400, "DeviceTokenNotForTopic", times=1)
    fake_apns.respond(flaky.push_token, 500, "InternalServerError", times=1)
    before = len(fake_apns.pushes)
    event_id = _redesign(live_app, client, key, program)

    assert deliver_event(live_app, event_id) == "retry"
    assert _push_counts(fake_apns, devices, before) == [1, 1, 1, 1, 1]
    assert _registrations(live_app, bad) == 0
    assert _event(live_app, event_id).payload["owed"] == [_registration_id(live_app, flaky)]

    _make_due(live_app, event_id)
    assert deliver_event(live_app, event_id) == "delivered"
    assert _push_counts(fake_apns, devices, before) == [1, 1, 1, 2, 1]
    for device in (devices[0], flaky, devices[4]):
        assert device.updated_serials() == [device.serial]


def test_program_push_that_stops_halfway_resumes_where_it_stopped(live_app, shop, fake_apns, monkeypatch):
    monkeypatch.setattr(wallet_push, "FANOUT_BATCH", 2)
    client, key, program = shop
    devices = [new_device(client, key, program)[1] for _ in range(5)]
    for device in devices[2:4]:  # the whole second batch: APNs is unwell, so the fan-out stops there
        fake_apns.respond(device.push_token, 503, "ServiceUnavailable", times=1)
    before = len(fake_apns.pushes)
    event_id = _redesign(live_app, client, key, program)

    assert deliver_event(live_app, event_id) == "retry"
    assert _push_counts(fake_apns, devices, before) == [1, 1, 1, 1, 0]

    _make_due(live_app, event_id)
    assert deliver_event(live_app, event_id) == "delivered"
    assert _push_counts(fake_apns, devices, before) == [1, 1, 2, 2, 1]


def test_every_token_called_not_for_topic_is_a_config_error_and_keeps_every_registration(
        live_app, shop, fake_apns):
    client, key, program = shop
    devices = [new_device(client, key, program)[1] for _ in range(3)]
    for device in devices:
        fake_apns.respond(device.push_token, 400, "DeviceTokenNotForTopic", times=1)
    event_id = _redesign(live_app, client, key, program)

    assert deliver_event(live_app, event_id) == "dead"
    assert [_registrations(live_app, device) for device in devices] == [1, 1, 1]
    assert "certificate" in _event(live_app, event_id).last_error


def test_a_lone_bad_token_is_kept_until_a_push_for_the_topic_has_succeeded(live_app, shop, fake_apns):
    client, key, program = shop
    member, device = new_device(client, key, program)
    fake_apns.respond(device.push_token, 400, "BadDeviceToken", times=2)
    earn(client, key, member["id"], points=5)
    event_id = _last_event_id(live_app, member["id"])
    assert deliver_event(live_app, event_id) == "dead"  # maybe a wrong certificate: nothing deleted
    assert _registrations(live_app, device) == 1

    other, _ = new_device(client, key, program)
    earn(client, key, other["id"], points=5)
    assert deliver_event(live_app, _last_event_id(live_app, other["id"])) == "delivered"
    _revive(live_app, event_id)
    assert deliver_event(live_app, event_id) == "delivered"  # certificate proven right: the token is bad
    assert _registrations(live_app, device) == 0


def test_member_push_retries_only_the_device_that_answered_500(live_app, shop, fake_apns):
    client, key, program = shop
    member, phone = new_device(client, key, program)
    watch = Device(client, client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data)
    assert watch.register().status_code == 201
    fake_apns.respond(phone.push_token, 500, "InternalServerError", times=1)
    before = len(fake_apns.pushes)
    earn(client, key, member["id"], points=5)
    event_id = _last_event_id(live_app, member["id"])

    assert deliver_event(live_app, event_id) == "retry"
    _make_due(live_app, event_id)
    assert deliver_event(live_app, event_id) == "delivered"
    assert _push_counts(fake_apns, [phone, watch], before) == [2, 1]


def _redesign(app, client, key, program) -> int:
    """Change the program's design; the id of the fan-out event it queued."""
    response = client.patch(f"/api/v1/programs/{program['id']}", json={"branding": {"background_color": "#123456"}},
                            headers=auth(key))
    assert response.status_code == 200
    with _session(app) as session:
        return session.scalars(select(OutboxEvent.id).where(
            OutboxEvent.program_id == program["id"], OutboxEvent.kind == PROGRAM_REFRESH)
            .order_by(OutboxEvent.id.desc())).first()


def _push_counts(fake, devices, since: int) -> list[int]:
    tokens = [push.token for push in fake.pushes[since:]]
    return [tokens.count(device.push_token) for device in devices]


def _registration_id(app, device) -> int:
    with _session(app) as session:
        return session.scalar(select(DeviceRegistration.id).where(
            DeviceRegistration.device_library_id == device.library_id))


def _revive(app, event_id) -> None:
    """What `punchpass outbox retry-dead` does for one event."""
    with _session(app) as session:
        session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id)
                        .values(dead_at=None, available_at=utcnow()))
        session.commit()


def _pass_json(pkpass: bytes) -> dict:
    return json.loads(zipfile.ZipFile(io.BytesIO(pkpass)).read("pass.json"))


def _session(app):
    return services(app).sessions()


def _registrations(app, device) -> int:
    with _session(app) as session:
        return len(session.scalars(select(DeviceRegistration).where(
            DeviceRegistration.device_library_id == device.library_id)).all())


def _event_ids(app, member_id) -> list[int]:
    with _session(app) as session:
        return list(session.scalars(select(OutboxEvent.id).where(OutboxEvent.member_id == member_id)
                                    .order_by(OutboxEvent.id)))


def _last_event_id(app, member_id) -> int:
    return _event_ids(app, member_id)[-1]


def _event(app, event_id) -> OutboxEvent:
    with _session(app) as session:
        return session.get(OutboxEvent, event_id)


def _pending_events(app, member_id) -> int:
    with _session(app) as session:
        return len(session.scalars(select(OutboxEvent.id).where(
            OutboxEvent.member_id == member_id, OutboxEvent.delivered_at.is_(None),
            OutboxEvent.dead_at.is_(None))).all())


def _make_due(app, event_id) -> None:
    with _session(app) as session:
        session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(available_at=utcnow()))
        session.commit()


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_operator_sees_dead_letters_and_can_retry_them(live_app, shop, fake_apns, test_env):
    from click.testing import CliRunner

    from app.cli import cli
    client, key, program = shop
    member, device = new_device(client, key, program)
    fake_apns.respond(device.push_token, 403, "BadCertificate", times=1)
    earn(client, key, member["id"], points=5)
    event_id = _last_event_id(live_app, member["id"])
    assert deliver_event(live_app, event_id) == "dead"
    runner = CliRunner(env=test_env)
    status = json.loads(runner.invoke(cli, ["outbox", "status", "--limit", "500"]).output)
    [letter] = [d for d in status["dead_letters"] if d["id"] == event_id]
    assert "403" in letter["last_error"] and status["dead"] >= 1
    assert "will be delivered again" in runner.invoke(cli, ["outbox", "retry-dead"]).output
    assert deliver_event(live_app, event_id) == "delivered"
