"""Update tags without an instance-wide lock (issue 9): card changes commit in any order, and a device polling the
serials list with its `lastUpdated` still gets every change that committed, never skipping one. On PostgreSQL
only: SQLite serialises writers, so there tags are handed out in commit order and nothing can race."""

from __future__ import annotations

import io
import json
import os
import random
import threading
import time
import uuid
import zipfile
from datetime import datetime, timezone

import pytest
import time_machine
from sqlalchemy import select

from app.domain.ledger import earn_points
from app.domain.passupdates import design_changed
from app.models import DeviceRegistration, Member, Program
from app.services import services
from tests.factories import TEST_PASS_TYPE_ID, earn, make_member, make_merchant, make_program

pytestmark = pytest.mark.skipif(not os.environ.get("PUNCHPASS_TEST_DATABASE_URL"),
                                reason="SQLite serialises writers: tags are taken in commit order, nothing races")

PUSH_TOKEN = "ab" * 32
NOON = datetime(2026, 11, 23, 12, 0, 0, 100_000, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def app(own_database_app):
    """Transactions held open here widen the horizon of everything else sharing the database."""
    return own_database_app


class Device:
    """An iPhone holding many cards: it polls the serials list with its lastUpdated and "downloads" (reads the
    version of) every serial listed. `trust_newest` is the naive client of a server answering the newest tag
    listed: what the counter row used to make safe."""

    def __init__(self, app, member_ids: list[int], trust_newest: bool = False):
        self.app, self.client, self.trust_newest = app, app.test_client(), trust_newest
        self.id, self.since, self.held = uuid.uuid4().hex, None, {}
        with services(app).sessions() as session:
            session.add_all(DeviceRegistration(device_library_id=self.id, push_token=PUSH_TOKEN, member_id=m)
                            for m in member_ids)
            session.commit()

    def poll(self) -> bool:
        """One round: True when something was listed."""
        query = f"?passesUpdatedSince={self.since}" if self.since is not None else ""
        response = self.client.get(f"/wallet/v1/devices/{self.id}/registrations/{TEST_PASS_TYPE_ID}{query}")
        if response.status_code == 204:
            return False
        assert response.status_code == 200, response.status_code
        body = response.get_json()
        with services(self.app).sessions() as session:
            rows = session.execute(select(Member.serial_number, Member.pass_version, Member.pass_update_tag)
                                   .where(Member.serial_number.in_(body["serialNumbers"]))).all()
        self.held.update({serial: version for serial, version, _ in rows})
        self.since = max(tag for *_, tag in rows) if self.trust_newest else body["lastUpdated"]
        return True

    def settle(self, rounds: int = 50) -> None:
        """Poll until nothing is listed (passes above the horizon are listed again until it passes them)."""
        for _ in range(rounds):
            if not self.poll():
                return
            time.sleep(0.01)
        raise AssertionError("the serials list never settled")

    def stale(self) -> dict[str, tuple[int | None, int]]:
        with services(self.app).sessions() as session:
            current = dict(session.execute(select(Member.serial_number, Member.pass_version)
                                           .where(Member.serial_number.in_(self.held))).all())
        return {serial: (self.held[serial], version) for serial, version in current.items()
                if self.held[serial] != version}


def _cards(app, count: int) -> list[int]:
    client = app.test_client()
    _, key = make_merchant(app)
    program = make_program(client, key)
    return [make_member(client, key, program["id"])["id"] for _ in range(count)]


def test_changes_committed_out_of_tag_order_are_never_skipped(app):
    """Every earn takes its tag, then waits; they commit in shuffled order (the newest tag first), and after each
    commit two devices poll. The one that trusts the server's lastUpdated ends holding every card's newest
    version; the one that trusts the newest tag listed (what a lock-free server must not answer) misses some."""
    count = 12
    members = _cards(app, count)
    device, naive = Device(app, members), Device(app, members, trust_newest=True)
    device.settle(), naive.settle()

    tagged, go = threading.Barrier(count + 1), [threading.Event() for _ in range(count)]
    done, tags, errors = [threading.Event() for _ in range(count)], [0] * count, []

    def till(n: int) -> None:
        try:
            with services(app).sessions() as session:
                member = session.get(Member, members[n])
                earn_points(session, member, 1)
                tags[n] = member.pass_update_tag
                tagged.wait(timeout=30)
                assert go[n].wait(timeout=30)
                session.commit()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
            tagged.abort()
        finally:
            done[n].set()

    threads = [threading.Thread(target=till, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    tagged.wait(timeout=30)
    order = sorted(range(count), key=lambda n: tags[n], reverse=True)
    order = order[:1] + random.Random(9).sample(order[1:], count - 1)
    for n in order:
        go[n].set()
        assert done[n].wait(timeout=30)
        device.poll(), naive.poll()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert len(set(tags)) == count  # one transaction each: every change has a tag of its own

    device.settle(), naive.settle()
    assert device.stale() == {}
    assert naive.stale(), "the scenario must be one a lastUpdated past a change in flight gets wrong"


def test_many_tills_earning_at_once_while_a_device_polls(app):
    """Free-running: tills earn on their own cards with transactions of random length while a device polls
    all the time; once they stop, it holds the newest version of every card."""
    tills, earns_each = 8, 6
    members = _cards(app, tills * 2)
    device = Device(app, members)
    device.settle()
    stop, errors = threading.Event(), []

    def till(n: int) -> None:
        rng = random.Random(n)
        try:
            for _ in range(earns_each):
                with services(app).sessions() as session:
                    member = session.get(Member, rng.choice(members[2 * n:2 * n + 2]))
                    earn_points(session, member, 1)
                    time.sleep(rng.uniform(0, 0.03))
                    session.commit()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    def poller() -> None:
        while not stop.is_set():
            device.poll()

    polling = threading.Thread(target=poller)
    polling.start()
    threads = [threading.Thread(target=till, args=(n,)) for n in range(tills)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    stop.set()
    polling.join(timeout=30)
    assert not errors, errors
    device.settle()
    assert device.stale() == {}


def test_design_change_committed_after_an_earn_and_a_download_is_not_hidden_by_304(app):
    """A reward is added (the program's row changes, its time taken) and its transaction stays open; meanwhile a
    member of that program earns, and the device downloads the card. The design change then commits with a time
    older than the device's Last-Modified: the next download must still be the new pass, not a 304."""
    with time_machine.travel(NOON, tick=False) as clock:
        client = app.test_client()
        _, key = make_merchant(app)
        program = make_program(client, key, branding={"logo_text": "Design 0"})
        member = make_member(client, key, program["id"])
        with services(app).sessions() as session:
            token = session.get(Member, member["id"]).auth_token
        clock.shift(2)
        redesign = services(app).sessions()
        try:
            row = redesign.get(Program, program["id"])
            row.logo_text = "Design 1"
            design_changed(redesign, row)  # its time: NOON + 2 s
            redesign.flush()
            clock.shift(3)
            assert earn(client, key, member["id"], points=5).status_code == 201  # NOON + 5 s, committed
            headers = {"Authorization": f"ApplePass {token}"}
            url = f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{member['serial_number']}"
            first = client.get(url, headers=headers)
            assert first.status_code == 200
            redesign.commit()
        finally:
            redesign.close()
        clock.shift(1)
        again = client.get(url, headers={**headers, "If-Modified-Since": first.headers["Last-Modified"]})
        assert again.status_code == 200
        assert json.loads(zipfile.ZipFile(io.BytesIO(again.data)).read("pass.json"))["logoText"] == "Design 1"



def test_an_open_earn_does_not_hold_up_another_merchants_till(app):
    """Issue 9: one merchant's earn, its update tag taken and its transaction still open, no longer makes another
    merchant's till wait for that commit (the counter row used to)."""
    first = _cards(app, 1)[0]
    client = app.test_client()
    _, key = make_merchant(app, "Other Café")
    second = make_member(client, key, make_program(client, key)["id"])["id"]
    statuses: list[int] = []
    other = threading.Thread(target=lambda: statuses.append(
        earn(app.test_client(), key, second, points=1).status_code))
    held = services(app).sessions()
    try:
        earn_points(held, held.get(Member, first), 1)
        held.flush()
        other.start()
        other.join(timeout=10)
        assert statuses == [201], "the other merchant's earn waited for an unrelated open transaction"
    finally:
        held.commit()
        held.close()
        other.join(timeout=30)
