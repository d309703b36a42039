"""`punchpass revoke-api-key` and `punchpass rotate-card-link`: a leaked key or card link stops working at once."""

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from app import create_app
from app.cli import cli
from app.config import load_config
from app.models import Member, OutboxEvent, utcnow
from app.services import services
from tests.factories import auth, make_member, make_merchant, make_program
from tests.workers.test_wallet_push import Device


def punchpass(test_env, *args) -> dict:
    result = CliRunner().invoke(cli, list(args), env=test_env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def two_processes(test_env):
    """Two app instances on one database, as two gunicorn workers (or two hosts) are."""
    apps = [create_app(load_config(test_env), testing=True) for _ in range(2)]
    yield [app.test_client() for app in apps]
    for app in apps:
        services(app).engine.dispose()


def test_create_api_key_prints_the_key_and_its_id(app, test_env):
    merchant_id, _ = make_merchant(app)

    created = punchpass(test_env, "create-api-key", "--merchant", str(merchant_id), "--scope", "pos")

    assert created["api_key"].startswith("pp_pos_") and isinstance(created["id"], int)


def test_a_till_key_names_its_store_and_works_for_that_merchant(app, client, test_env):
    merchant_id, _ = make_merchant(app)

    created = punchpass(test_env, "create-api-key", "--merchant", str(merchant_id), "--store", "Shibuya")

    assert created["store"] == "Shibuya" and created["api_key"].startswith("pp_pos_")
    lookup = client.post("/api/v1/checkout/lookup", json={"barcode": "no-such-card"}, headers=auth(created["api_key"]))
    assert lookup.status_code == 404  # authenticated as a till of that merchant: the card is simply unknown


def test_create_merchant_keeps_its_output(test_env):
    created = punchpass(test_env, "create-merchant", "--name", "Kept Café")
    assert set(created) == {"merchant_id", "api_key"}


def test_a_revoked_key_is_refused_at_once_by_every_process(app, test_env, two_processes):
    merchant_id, _ = make_merchant(app)
    created = punchpass(test_env, "create-api-key", "--merchant", str(merchant_id), "--scope", "admin")
    path = "/api/v1/programs/999999"
    assert [client.get(path, headers=auth(created["api_key"])).status_code for client in two_processes] == [404, 404]

    revoked = punchpass(test_env, "revoke-api-key", "--id", str(created["id"]))

    assert revoked["id"] == created["id"] and revoked["revoked_at"]
    assert [client.get(path, headers=auth(created["api_key"])).status_code for client in two_processes] == [401, 401]


def test_revoking_an_unknown_key_fails_naming_it(test_env):
    result = CliRunner().invoke(cli, ["revoke-api-key", "--id", "987654321"], env=test_env)
    assert result.exit_code == 1 and "987654321" in result.output


def test_rotating_a_card_link_replaces_link_and_code_and_updates_the_card(app, client, test_env):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    old_path = member["apple_pass_url"].replace("https://punchpass.test", "")
    device = Device(client, client.get(old_path).data)
    assert device.register().status_code == 201
    device.updated_serials()

    rotated = punchpass(test_env, "rotate-card-link", "--member", str(member["id"]))

    new_path = rotated["apple_pass_url"].replace("https://punchpass.test", "")
    assert new_path != old_path and rotated["barcode_value"] != member["barcode_value"]
    assert client.get(old_path).status_code == 404 and client.get(new_path).status_code == 200
    assert client.post("/api/v1/checkout/lookup", json={"barcode": member["barcode_value"]},
                       headers=auth(key)).status_code == 404
    assert client.post("/api/v1/checkout/holds", json={"barcode": member["barcode_value"], "points": 1},
                       headers=auth(key)).status_code == 404  # the old code holds nothing either
    assert client.post("/api/v1/checkout/lookup", json={"barcode": rotated["barcode_value"]},
                       headers=auth(key)).get_json()["id"] == member["id"]
    assert device.updated_serials() == [member["serial_number"]]  # same serial, same Apple token: it updates
    card = device.fetch_pass()
    assert card["barcodes"][0]["message"] == rotated["barcode_value"]
    with services(app).sessions() as session:
        assert session.scalar(select(Member.serial_number).where(Member.id == member["id"])) == card["serialNumber"]
        pushes = update(OutboxEvent).where(OutboxEvent.member_id == member["id"], OutboxEvent.kind == "apple_push")
        # The push is queued; nobody delivers it here (marked done, so no other test's worker sends it).
        assert session.execute(pushes.values(delivered_at=utcnow())).rowcount == 1
        session.commit()


def test_rotating_an_unknown_member_fails_naming_it(test_env):
    result = CliRunner().invoke(cli, ["rotate-card-link", "--member", "987654321"], env=test_env)
    assert result.exit_code == 1 and "987654321" in result.output
