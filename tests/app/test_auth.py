"""API keys: 401 without a valid key on every merchant route, 403 for a POS key outside its scope, keys stored
only as hashes, and the CLI that issues them."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from app.cli import cli
from app.models import ApiKey
from app.services import services
from tests.factories import (
    assert_problem,
    auth,
    earn,
    make_api_key,
    make_member,
    make_merchant,
    make_png,
    make_program,
    merchant_api_routes,
    redeem,
    revoke_api_key,
)


def test_every_api_route_without_authorization_is_401(app, client):
    routes = merchant_api_routes(app)
    assert len(routes) >= 12, [rule.rule for _, rule in routes]
    for method, rule in routes:
        path = app.url_map.bind("localhost").build(rule.endpoint, placeholder_ids(rule), method=method)
        response = client.open(path, method=method, json={})
        assert_problem(response, 401)


@pytest.mark.parametrize("header", ["Bearer pp_admin_not-a-real-key", "Bearer ", "Basic dXNlcjpwYXNz"])
def test_a_wrong_api_key_is_401(app, client, header):
    _, key = make_merchant(app)
    program = make_program(client, key)
    response = client.get(f"/api/v1/programs/{program['id']}", headers={"Authorization": header})
    assert_problem(response, 401)


def test_a_revoked_api_key_is_401(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    revoke_api_key(app, key)
    assert_problem(client.get(f"/api/v1/programs/{program['id']}", headers=auth(key)), 401)
    assert_problem(client.post("/api/v1/programs", json={"name": "After revoke"}, headers=auth(key)), 401)


def test_a_pos_key_looks_up_reads_earns_and_redeems(app, client):
    merchant_id, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    till = make_api_key(app, merchant_id, "pos")
    lookup = client.post("/api/v1/checkout/lookup", json={"barcode": member["barcode_value"]}, headers=auth(till))
    assert lookup.status_code == 200 and lookup.get_json()["id"] == member["id"]
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(till)).status_code == 200
    assert earn(client, till, member["id"], points=50).status_code == 201
    spent = redeem(client, till, member["id"], points=20)
    assert spent.status_code == 201 and spent.get_json()["member"]["points_balance"] == 30


@pytest.mark.parametrize("action", ["create program", "create reward", "enrol member", "upload image",
                                    "reverse transaction", "read transactions", "download pass"])
def test_a_pos_key_is_403_outside_its_scope(app, client, action):
    merchant_id, key = make_merchant(app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"], points=100)
    transaction = earn(client, key, member["id"], points=10).get_json()["transaction"]
    till = make_api_key(app, merchant_id, "pos")
    method, path, body = admin_only_calls(program["id"], member["id"], transaction["id"])[action]
    response = client.open(path, method=method, headers=auth(till, "pos-attempt"), **body)
    assert_problem(response, 403)
    after = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert after["points_balance"] == 110


def test_api_keys_are_stored_only_as_hashes(app, client):
    merchant_id, admin_key = make_merchant(app)
    till = make_api_key(app, merchant_id, "pos")
    with app.app_context():
        session = services(app).sessions()
        rows = session.execute(select(ApiKey.__table__).where(ApiKey.merchant_id == merchant_id)).all()
        session.close()
    stored = " ".join(str(value) for row in rows for value in row)
    assert len(rows) == 2
    assert admin_key not in stored and till not in stored
    assert admin_key[12:] not in stored and till[12:] not in stored  # not even the secret part


def test_cli_create_merchant_prints_its_id_and_a_working_admin_key(client, test_env):
    result = CliRunner().invoke(cli, ["create-merchant", "--name", "CLI Café"], env=test_env)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) >= {"merchant_id", "api_key"} and isinstance(printed["merchant_id"], int)
    response = client.post("/api/v1/programs", json={"name": "From the CLI"}, headers=auth(printed["api_key"]))
    assert response.status_code == 201, response.get_json()


def test_cli_create_api_key_prints_a_working_pos_key(client, test_env):
    merchant = json.loads(CliRunner().invoke(cli, ["create-merchant", "--name", "Till Shop"], env=test_env).stdout)
    result = CliRunner().invoke(cli, ["create-api-key", "--merchant", str(merchant["merchant_id"]),
                                      "--scope", "pos"], env=test_env)
    assert result.exit_code == 0, result.output
    till = json.loads(result.stdout)["api_key"]
    program = make_program(client, merchant["api_key"])
    member = make_member(client, merchant["api_key"], program["id"])
    assert earn(client, till, member["id"], points=5).status_code == 201
    assert_problem(client.post("/api/v1/programs", json={"name": "Not allowed"}, headers=auth(till)), 403)


def placeholder_ids(rule) -> dict:
    """Some value for every path parameter: authentication is checked before anything is looked up."""
    return {name: "logo" if name == "kind" else 1 for name in rule.arguments}


def admin_only_calls(program_id: int, member_id: int, transaction_id: int) -> dict:
    """What a till may not do: (method, path, body) for each admin-only action, with valid bodies."""
    return {
        "create program": ("POST", "/api/v1/programs", {"json": {"name": "Till's own"}}),
        "create reward": ("POST", f"/api/v1/programs/{program_id}/rewards",
                          {"json": {"name": "Free cake", "points_cost": 5}}),
        "enrol member": ("POST", f"/api/v1/programs/{program_id}/members", {"json": {"name": "Walk-in"}}),
        "upload image": ("PUT", f"/api/v1/programs/{program_id}/images/logo",
                         {"data": {"file": (BytesIO(make_png()), "logo.png")}, "content_type": "multipart/form-data"}),
        "adjust points": ("POST", f"/api/v1/members/{member_id}/adjust",
                          {"json": {"points": 100, "reason": "Till's gift"}}),
        "change program": ("PATCH", f"/api/v1/programs/{program_id}", {"json": {"name": "Renamed"}}),
        "reverse transaction": ("POST", f"/api/v1/transactions/{transaction_id}/reverse", {"json": {}}),
        "read transactions": ("GET", f"/api/v1/members/{member_id}/transactions", {}),
        "download pass": ("GET", f"/api/v1/members/{member_id}/pass.pkpass", {}),
    }
