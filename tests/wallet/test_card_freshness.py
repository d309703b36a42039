"""A device never keeps a stale card: Last-Modified / If-Modified-Since against earns, design changes and
settings changes, with a clock the test steps (HTTP dates have whole seconds, which is where it goes wrong)."""

import io
import json
import uuid
import zipfile
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app import create_app
from app.config import load_config
from app.models import OutboxEvent
from app.services import services
from tests.factories import TEST_PASS_TYPE_ID, auth, earn, make_member, make_merchant, make_program

NOON = datetime(2026, 11, 23, 12, 0, 0, 100_000, tzinfo=timezone.utc)
PUSH_TOKEN = "ab" * 32


class Device:
    """An iPhone holding one card: it keeps the pass and the Last-Modified it came with."""

    def __init__(self, client, member: dict, key: str):
        self.client, self.key, self.member_id = client, key, member["id"]
        self.serial = member["serial_number"]
        self.pass_json = _pass_json(client.get(member["apple_pass_url"].replace("https://punchpass.test", "")).data)
        self.token = self.pass_json["authenticationToken"]
        self.label: str | None = None

    def download(self):
        """GET the pass as Wallet does, with If-Modified-Since once it has a Last-Modified."""
        headers = {"Authorization": f"ApplePass {self.token}"}
        if self.label:
            headers["If-Modified-Since"] = self.label
        response = self.client.get(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{self.serial}", headers=headers)
        assert response.status_code in (200, 304), response.status_code
        if response.status_code == 200:  # a 304 keeps the copy and its label
            self.pass_json = _pass_json(response.data)
            self.label = response.headers["Last-Modified"]
        return response

    @property
    def shows(self) -> tuple[int, str]:
        return self.pass_json["storeCard"]["primaryFields"][0]["value"], self.pass_json["logoText"]

    def newest(self) -> tuple[int, str]:
        """What the card shows on the server now."""
        member = self.client.get(f"/api/v1/members/{self.member_id}", headers=auth(self.key)).get_json()
        program = self.client.get(f"/api/v1/programs/{member['program_id']}", headers=auth(self.key)).get_json()
        return member["available_points"], program["branding"]["logo_text"]


def _new_card(app, points: int = 0):
    client = app.test_client()
    _, key = make_merchant(app)
    program = make_program(client, key, branding={"logo_text": "Design 0"})
    member = make_member(client, key, program["id"])
    if points:
        earn(client, key, member["id"], points=points)
    return client, key, program, member


def _rebrand(client, key, program_id: int, text: str) -> None:
    response = client.patch(f"/api/v1/programs/{program_id}", json={"branding": {"logo_text": text}},
                            headers=auth(key))
    assert response.status_code == 200, response.get_json()


def test_unchanged_card_is_304_and_a_later_earn_is_200(app):
    with time_machine.travel(NOON, tick=False) as clock:
        client, key, _, member = _new_card(app)
        clock.shift(1)
        earn(client, key, member["id"], points=10)
        clock.shift(1)
        device = Device(client, member, key)
        assert device.download().status_code == 200 and device.shows[0] == 10
        assert device.download().status_code == 304
        clock.shift(5)
        earn(client, key, member["id"], points=5)
        assert device.download().status_code == 200 and device.shows[0] == 15


def test_earn_in_the_same_second_as_the_download_is_not_hidden_by_304(app):
    with time_machine.travel(NOON, tick=False) as clock:
        client, key, _, member = _new_card(app)
        clock.shift(3)
        device = Device(client, member, key)
        device.download()
        clock.shift(0.3)  # same second as the download
        earn(client, key, member["id"], points=5)
        assert device.download().status_code == 200 and device.shows[0] == 5


def test_earn_after_a_design_change_is_not_hidden_by_304(app):
    """Reproduces the audit: branding change -> download -> earn -> conditional download gave 304."""
    with time_machine.travel(NOON, tick=False) as clock:
        client, key, program, member = _new_card(app)
        clock.shift(2)
        _rebrand(client, key, program["id"], "Design 1")
        device = Device(client, member, key)
        device.download()
        clock.shift(0.5)
        earn(client, key, member["id"], points=7)
        assert device.download().status_code == 200 and device.shows == (7, "Design 1")


def test_last_modified_is_never_in_the_future_after_many_quick_earns(app):
    """Versions used to be stamped a second apart: 30 quick earns put the card 30 s in the future, and another
    member's earn 5 s later got 304."""
    with time_machine.travel(NOON, tick=False) as clock:
        client, key, program, member = _new_card(app)
        other = make_member(client, key, program["id"], name="Other")
        for _ in range(30):
            earn(client, key, member["id"], points=1)
        _rebrand(client, key, program["id"], "Design 1")
        for card in (member, other):
            device = Device(client, card, key)
            device.download()
            assert parsedate_to_datetime(device.label) <= NOON
        clock.shift(5)
        earn(client, key, other["id"], points=2)
        assert device.download().status_code == 200 and device.shows == (2, "Design 1")


OPERATIONS = st.lists(st.one_of(
    st.just(("earn",)), st.just(("design",)), st.just(("download",)),
    st.tuples(st.just("tick"), st.sampled_from([0.2, 0.5, 0.9, 1.0, 2.5]))), min_size=1, max_size=14)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_device_always_ends_on_the_newest_pass(app, operations):
    """Random interleavings of earns, design changes, downloads and clock steps: a download is either the
    newest pass or a 304 for a device that already holds it, and Last-Modified is never later than now."""
    with time_machine.travel(NOON, tick=False) as clock:
        client, key, program, member = _new_card(app)
        device, designs = Device(client, member, key), 0
        for operation in [*operations, ("download",)]:
            if operation[0] == "earn":
                earn(client, key, member["id"], points=1)
            elif operation[0] == "design":
                designs += 1
                _rebrand(client, key, program["id"], f"Design {designs}")
            elif operation[0] == "tick":
                clock.shift(operation[1])
            else:
                device.download()
                assert parsedate_to_datetime(device.label) <= datetime.now(timezone.utc)
                assert device.shows == device.newest(), operations


def test_new_public_base_url_reaches_cards_already_installed(private_env):
    """A card signed under the old address, then a restart with another PUBLIC_BASE_URL: the web service and the
    public link both serve the new webServiceURL, and the installed card is re-issued (no 304, a push queued)."""
    with time_machine.travel(NOON, tick=False) as clock:
        old_app = create_app(load_config(private_env), testing=True)
        client, key, _, member = _new_card(old_app, points=3)
        device = Device(client, member, key)
        client.post(f"/wallet/v1/devices/{uuid.uuid4().hex}/registrations/{TEST_PASS_TYPE_ID}/{device.serial}",
                    json={"pushToken": PUSH_TOKEN}, headers={"Authorization": f"ApplePass {device.token}"})
        clock.shift(2)
        device.download()
        assert device.pass_json["webServiceURL"] == "https://punchpass.test/wallet"
        services(old_app).engine.dispose()

        clock.shift(60)
        new_app = create_app(load_config({**private_env, "PUBLIC_BASE_URL": "https://cards.example.com"}),
                             testing=True)
        device.client = new_app.test_client()
        assert device.download().status_code == 200
        assert device.pass_json["webServiceURL"] == "https://cards.example.com/wallet"
        public = device.client.get(member["apple_pass_url"].replace("https://punchpass.test", ""))
        assert _pass_json(public.data)["webServiceURL"] == "https://cards.example.com/wallet"
        with services(new_app).sessions() as session:
            kinds = session.scalars(select(OutboxEvent.kind).where(OutboxEvent.program_id == member["program_id"])
                                    .order_by(OutboxEvent.id.desc()).limit(1)).all()
        assert kinds == ["program_refresh"]
        services(new_app).engine.dispose()


def _pass_json(pkpass: bytes) -> dict:
    return json.loads(zipfile.ZipFile(io.BytesIO(pkpass)).read("pass.json"))


def test_a_web_server_with_a_slow_clock_cannot_hide_an_earn_behind_304(app):
    """Two web servers' clocks disagree: the second earn is stamped by one that runs 5 s behind. Change times
    still grow under the row lock, so the device holding the first earn's pass gets the second."""
    with time_machine.travel(NOON, tick=False) as clock:
        client, key, _, member = _new_card(app)
        clock.shift(10)
        earn(client, key, member["id"], points=1)
        clock.shift(3)
        device = Device(client, member, key)
        device.download()
        clock.shift(-5)  # the next request lands on the server whose clock is behind
        earn(client, key, member["id"], points=2)
        clock.shift(6)
        assert device.download().status_code == 200 and device.shows[0] == 3
