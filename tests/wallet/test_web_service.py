"""Apple's PassKit web service, called exactly as an iPhone calls it."""

import io
import json
import time
import uuid
import zipfile

import pytest
from sqlalchemy import select

from app.models import DeviceLog, DeviceRegistration
from app.services import services
from tests.factories import TEST_PASS_TYPE_ID, earn, make_member, make_merchant, make_program

PUSH_TOKEN = "ab" * 32


@pytest.fixture
def card(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"], points=10)
    pass_json = _pass_json(client.get(member["apple_pass_url"].replace("https://punchpass.test", "")).data)
    return {"key": key, "member": member, "serial": pass_json["serialNumber"],
            "token": pass_json["authenticationToken"], "device": uuid.uuid4().hex}


def register(client, card, token=None, body=None):
    return client.post(f"/wallet/v1/devices/{card['device']}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}",
                       json={"pushToken": PUSH_TOKEN} if body is None else body,
                       headers={"Authorization": f"ApplePass {token or card['token']}"})


def serials(client, device, since=None):
    query = f"?passesUpdatedSince={since}" if since is not None else ""
    return client.get(f"/wallet/v1/devices/{device}/registrations/{TEST_PASS_TYPE_ID}{query}")


def settled(client, device, since: str, attempts: int = 100) -> str:
    """Follow `lastUpdated` until the list is empty; the tag it ends on. On PostgreSQL a pass listed above the
    horizon (a transaction anywhere in the cluster still open) is listed again until the horizon passes it."""
    for _ in range(attempts):
        response = serials(client, device, since=since)
        if response.status_code == 204:
            return since
        since = response.get_json()["lastUpdated"]
        time.sleep(0.02)
    raise AssertionError("the serials list never settled")


def fetch(client, card, token=None, **headers):
    return client.get(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{card['serial']}",
                      headers={"Authorization": f"ApplePass {token or card['token']}", **headers})


def test_pass_points_devices_at_the_wallet_web_service(card):
    assert card["serial"] == card["member"]["serial_number"]
    assert len(card["token"]) >= 16


def test_register_is_201_then_200_and_updates_the_push_token(client, card):
    assert register(client, card).status_code == 201
    assert register(client, card, body={"pushToken": "cd" * 32}).status_code == 200


@pytest.mark.parametrize("push_token", ["not-hex-" * 4, "ab" * 4, "ab" * 101, 12345])
def test_register_with_a_push_token_apns_could_not_have_issued_is_400_and_stores_nothing(app, client, card,
                                                                                        push_token):
    assert register(client, card, body={"pushToken": push_token}).status_code == 400
    with services(app).sessions() as session:
        assert session.scalars(select(DeviceRegistration).where(
            DeviceRegistration.device_library_id == card["device"])).all() == []


def test_re_registering_with_a_malformed_push_token_keeps_the_working_one(app, client, card):
    assert register(client, card).status_code == 201
    assert register(client, card, body={"pushToken": "zz" * 32}).status_code == 400
    with services(app).sessions() as session:
        assert session.scalars(select(DeviceRegistration.push_token).where(
            DeviceRegistration.device_library_id == card["device"])).all() == [PUSH_TOKEN]


def test_register_with_a_wrong_token_is_401(client, card):
    assert register(client, card, token="x" * 24).status_code == 401


def test_register_with_a_malformed_body_is_400(client, card):
    assert register(client, card, body={"token": "nope"}).status_code == 400
    response = client.post(f"/wallet/v1/devices/{card['device']}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}",
                           data="not json", headers={"Authorization": f"ApplePass {card['token']}"})
    assert response.status_code == 400


def test_unknown_serial_and_wrong_pass_type_look_like_a_bad_token(client, card):
    unknown = client.post(f"/wallet/v1/devices/{card['device']}/registrations/{TEST_PASS_TYPE_ID}/nope",
                          json={"pushToken": PUSH_TOKEN}, headers={"Authorization": f"ApplePass {card['token']}"})
    other_type = client.get(f"/wallet/v1/passes/pass.other.type/{card['serial']}",
                            headers={"Authorization": f"ApplePass {card['token']}"})
    assert unknown.status_code == other_type.status_code == 401


def test_serials_lists_changed_passes_since_the_tag_and_204_when_none(client, card):
    register(client, card)
    first = serials(client, card['device'])
    assert first.status_code == 200
    body = first.get_json()
    assert body["serialNumbers"] == [card["serial"]] and body["lastUpdated"].isdigit()
    since = settled(client, card['device'], body["lastUpdated"])
    earn(client, card["key"], card["member"]["id"], points=5)
    changed = serials(client, card['device'], since=since).get_json()
    assert changed["serialNumbers"] == [card["serial"]]
    assert int(settled(client, card['device'], changed["lastUpdated"])) > int(since)


def test_serials_for_an_unknown_device_is_204(client):
    assert serials(client, "never-registered").status_code == 204


def test_serial_and_token_never_change_across_updates(client, card):
    earn(client, card["key"], card["member"]["id"], points=7)
    pass_json = _pass_json(fetch(client, card).data)
    assert (pass_json["serialNumber"], pass_json["authenticationToken"]) == (card["serial"], card["token"])
    assert pass_json["webServiceURL"] == "https://punchpass.test/wallet"


def test_pass_download_with_a_wrong_token_is_401(client, card):
    assert fetch(client, card, token="y" * 24).status_code == 401


def test_unregister_is_200_and_the_device_stops_seeing_the_pass(client, card):
    register(client, card)
    response = client.delete(f"/wallet/v1/devices/{card['device']}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}",
                             headers={"Authorization": f"ApplePass {card['token']}"})
    assert response.status_code == 200
    assert serials(client, card['device']).status_code == 204


def test_unregister_with_a_wrong_token_is_401(client, card):
    response = client.delete(f"/wallet/v1/devices/{card['device']}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}",
                             headers={"Authorization": "ApplePass wrongwrongwrongwrong"})
    assert response.status_code == 401


def test_device_logs_are_accepted_and_stored_truncated(app, client):
    marker = "marker-" + "z" * 5000
    response = client.post("/wallet/v1/log", json={"logs": [marker, "second line"]})
    assert response.status_code == 200
    with app.app_context():
        session = services(app).sessions()
        stored = [m for m in session.query(DeviceLog.message) if m[0].startswith("marker-")]
        session.close()
    assert stored and all(len(m[0]) == 1000 for m in stored)
    assert client.post("/wallet/v1/log", data="nope").status_code == 400


def test_balance_field_has_a_change_message_with_a_placeholder(client, card):
    pass_json = _pass_json(fetch(client, card).data)
    balance = pass_json["storeCard"]["primaryFields"][0]
    strings = _strings(fetch(client, card).data)
    for locale, table in strings.items():
        assert "%@" in table[balance["changeMessage"]], locale


def _pass_json(pkpass: bytes) -> dict:
    return json.loads(zipfile.ZipFile(io.BytesIO(pkpass)).read("pass.json"))


def _strings(pkpass: bytes) -> dict:
    from passes.strings import read_strings
    archive = zipfile.ZipFile(io.BytesIO(pkpass))
    return {name.split(".")[0]: read_strings(archive.read(name)) for name in archive.namelist()
            if name.endswith("pass.strings")}


def test_register_and_log_accept_json_sent_without_a_content_type(app, client, card):
    """Apple promises a JSON body, not a Content-Type header."""
    path = f"/wallet/v1/devices/{card['device']}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}"
    response = client.post(path, data=json.dumps({"pushToken": PUSH_TOKEN}),
                           headers={"Authorization": f"ApplePass {card['token']}", "Content-Type": "text/plain"})
    assert response.status_code == 201
    assert serials(client, card["device"]).get_json()["serialNumbers"] == [card["serial"]]
    assert client.post("/wallet/v1/log", data=json.dumps({"logs": ["plain text body"]})).status_code == 200


def test_the_member_says_on_how_many_devices_the_card_is(client, card):
    def apple_wallet():
        member = client.get(f"/api/v1/members/{card['member']['id']}",
                            headers={"Authorization": f"Bearer {card['key']}"})
        return member.get_json()["wallets"]["apple"]

    assert apple_wallet() == {"installed": False, "devices": 0}
    register(client, card)
    second = {**card, "device": uuid.uuid4().hex}
    register(client, second)
    assert apple_wallet() == {"installed": True, "devices": 2}
    client.delete(f"/wallet/v1/devices/{card['device']}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}",
                  headers={"Authorization": f"ApplePass {card['token']}"})
    assert apple_wallet() == {"installed": True, "devices": 1}
