"""Input the database cannot store or compare (NUL, lone surrogates, ids beyond bigint, deep JSON) is a clear 4xx
that names what was wrong, never a 500, and writes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from app.models import DeviceLog, DeviceRegistration, Member
from app.services import services
from tests.factories import (
    TEST_PASS_TYPE_ID,
    assert_problem,
    auth,
    earn,
    make_member,
    make_merchant,
    make_program,
    redeem,
)

NUL, SURROGATE = "\x00", "\ud800"
BEYOND_BIGINT = 2**63


@pytest.fixture(scope="module")
def app(own_database_app):
    """This module's many earns and tier changes stay out of the shared database's outbox."""
    return own_database_app


@pytest.fixture
def shop(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"], points=50)
    return key, program, member


def post_raw(client, path: str, body: dict, key: str | None = None):
    """Send JSON exactly as a hostile client could: `\\u0000` and `\\ud800` escapes survive json.dumps."""
    return client.post(path, data=json.dumps(body), content_type="application/json",
                       headers=auth(key) if key else {})


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize("where", ["program name", "tier name", "member name", "external_id", "earn reference"])
def test_nul_or_lone_surrogate_in_a_json_field_is_422_naming_the_field(app, client, shop, where, bad):
    key, program, member = shop
    path, body, field = {
        "program name": ("/api/v1/programs", {"name": f"Bean{bad}"}, "name"),
        "tier name": ("/api/v1/programs", {"name": "Bean", "tiers": [{"name": f"G{bad}", "threshold": 1}]},
                      "tiers.0.name"),
        "member name": (f"/api/v1/programs/{program['id']}/members", {"name": f"Mina{bad}"}, "name"),
        "external_id": (f"/api/v1/programs/{program['id']}/members", {"name": "Mina", "external_id": f"x{bad}"},
                        "external_id"),
        "earn reference": (f"/api/v1/members/{member['id']}/earn", {"points": 5, "reference": f"r{bad}"},
                           "reference"),
    }[where]
    body = assert_problem(post_raw(client, path, body, key), 422)
    assert field in body["errors"], body
    assert member_count(app, program["id"]) == 1
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["points_balance"] == 50


def test_nul_in_a_json_key_is_422(client, shop):
    key, _, _ = shop
    assert_problem(post_raw(client, "/api/v1/programs", {"name": "Bean", f"x{NUL}": 1}, key), 422)


@pytest.mark.parametrize("path", ["/cards/abcdefghijklmnopqrst%00.pkpass", "/cards/%00%00%00%00%00%00%00%00%00%00%00"
                                  "%00%00%00%00%00%00.pkpass", "/cards/abcdefghijklmnop%ED%A0%80.pkpass"])
def test_nul_or_surrogate_bytes_in_the_card_link_are_404(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("template", [
    "/wallet/v1/devices/{bad}/registrations/{ptid}",
    "/wallet/v1/devices/{bad}/registrations/{ptid}/{serial}",
    "/wallet/v1/passes/{ptid}/{bad}",
])
def test_nul_in_a_wallet_path_is_4xx(client, shop, template):
    path = template.format(bad="dev%00ice", ptid=TEST_PASS_TYPE_ID, serial="0" * 32)
    for method in ("GET", "POST", "DELETE"):
        response = client.open(path, method=method, json={"pushToken": "ab" * 32},
                               headers={"Authorization": "ApplePass " + "x" * 32})
        assert 400 <= response.status_code < 500, (method, response.status_code)


def test_nul_in_a_push_token_is_400_and_registers_nothing(app, client, shop):
    key, _, member = shop
    card = wallet_card(app, member)
    device = uuid.uuid4().hex
    response = client.post(f"/wallet/v1/devices/{device}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}",
                           data=json.dumps({"pushToken": "ab" * 16 + NUL + "ab" * 15}),
                           headers={"Authorization": f"ApplePass {card['token']}"})
    assert response.status_code == 400
    with services(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeviceRegistration)
                              .where(DeviceRegistration.device_library_id == device)) == 0


def test_personalization_with_nul_in_a_name_is_400(app, client, shop):
    _, _, member = shop
    card = wallet_card(app, member)
    response = client.post(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{card['serial']}/personalize",
                           data=json.dumps({"personalizationToken": "t",
                                            "requiredPersonalizationInfo": {"fullName": f"Mina{NUL}"}}))
    assert response.status_code in (400, 404)  # 404 while personalization is off


def test_device_log_lines_with_nul_or_surrogates_are_kept_cleaned(app, client):
    marker = f"hostile-{uuid.uuid4().hex}"
    lines = [f"{marker} a{NUL}b", f"{marker} c{SURROGATE}d"]
    response = client.post("/wallet/v1/log", data=json.dumps({"logs": lines}))
    assert response.status_code == 200
    with services(app).sessions() as session:
        stored = sorted(session.scalars(select(DeviceLog.message).where(DeviceLog.message.startswith(marker))))
    assert stored == [f"{marker} a\\x00b", f"{marker} c\ufffdd"]  # NUL escaped like any control character


@pytest.mark.parametrize("template", ["/api/v1/members/{n}", "/api/v1/members/{n}/transactions",
                                      "/api/v1/programs/{n}", "/api/v1/members/{n}/pass.pkpass"])
@pytest.mark.parametrize("n", [str(BEYOND_BIGINT), "1" + "0" * 30, "9" * 5000], ids=["2^63", "10^30", "5000 digits"])
def test_an_id_beyond_bigint_in_the_path_is_404(client, shop, template, n):
    key, _, _ = shop
    assert_problem(client.get(template.format(n=n), headers=auth(key)), 404)


def test_an_id_beyond_bigint_in_a_write_path_is_404_and_writes_nothing(client, shop):
    key, _, member = shop
    assert_problem(earn(client, key, BEYOND_BIGINT, points=5), 404)
    assert_problem(client.post(f"/api/v1/transactions/{BEYOND_BIGINT}/reverse", json={}, headers=auth(key)), 404)


@pytest.mark.parametrize("before", [str(BEYOND_BIGINT), "9" * 40, "²"])
def test_before_cursor_beyond_bigint_is_422_naming_before(client, shop, before):
    key, _, member = shop
    response = client.get(f"/api/v1/members/{member['id']}/transactions?before={before}", headers=auth(key))
    assert "query.before" in assert_problem(response, 422)["errors"]


def test_reward_id_beyond_bigint_is_422_naming_reward_id(client, shop):
    key, _, member = shop
    body = assert_problem(redeem(client, key, member["id"], reward_id=BEYOND_BIGINT), 422)
    assert "reward_id" in body["errors"]


@pytest.mark.parametrize("since", ["²", "١٢", "9" * 40, "-1", "1e5"])
def test_passes_updated_since_that_is_not_a_tag_we_issued_is_not_a_500(app, client, shop, since):
    _, _, member = shop
    card = wallet_card(app, member)
    device = uuid.uuid4().hex
    client.post(f"/wallet/v1/devices/{device}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}",
                json={"pushToken": "ab" * 32}, headers={"Authorization": f"ApplePass {card['token']}"})
    response = client.get(f"/wallet/v1/devices/{device}/registrations/{TEST_PASS_TYPE_ID}?passesUpdatedSince={since}")
    assert response.status_code == 200
    assert response.get_json()["serialNumbers"] == [card["serial"]]


@pytest.mark.parametrize("currency", ["USD\n", "usd", "USDX", "US"])
def test_currency_must_be_exactly_three_capitals_even_with_a_trailing_newline(client, shop, currency):
    key, _, _ = shop
    body = assert_problem(client.post("/api/v1/programs", json={"name": "Bean", "currency": currency},
                                      headers=auth(key)), 422)
    assert "currency" in body["errors"]


@pytest.mark.parametrize("depth", [100, 5_000, 100_000])
def test_deeply_nested_json_is_400_problem(client, shop, depth):
    key, program, _ = shop
    raw = '{"name": ' + "[" * depth + "]" * depth + "}"
    response = client.post(f"/api/v1/programs/{program['id']}/members", data=raw, content_type="application/json",
                           headers=auth(key))
    assert_problem(response, 400)


@pytest.mark.parametrize("path", ["/wallet/v1/log", "/wallet/v1/devices/d/registrations/{ptid}/{serial}"])
def test_deeply_nested_json_to_apple_endpoints_is_a_plain_400(app, client, shop, path):
    _, _, member = shop
    card = wallet_card(app, member)
    raw = '{"logs": ' + "[" * 5_000 + "]" * 5_000 + "}"
    response = client.post(path.format(ptid=TEST_PASS_TYPE_ID, serial=card["serial"]), data=raw,
                           content_type="application/json", headers={"Authorization": f"ApplePass {card['token']}"})
    assert response.status_code == 400 and response.mimetype == "text/plain"


def test_json_integer_with_thousands_of_digits_is_400(client, shop):
    key, _, member = shop
    response = client.post(f"/api/v1/members/{member['id']}/earn", data='{"points": ' + "9" * 5000 + "}",
                           content_type="application/json", headers=auth(key, "digits"))
    assert_problem(response, 400)


def test_partial_tier_in_a_patch_is_422_naming_the_missing_field(client, shop):
    key, program, _ = shop
    response = client.patch(f"/api/v1/programs/{program['id']}", json={"tiers": [{"name": "X"}]}, headers=auth(key))
    assert "tiers.0.threshold" in assert_problem(response, 422)["errors"]


@pytest.mark.parametrize("header", ["key\x00one", "key\x01two", "key\ttab"])
def test_idempotency_key_with_control_characters_is_400(client, shop, header):
    key, _, member = shop
    response = earn(client, key, member["id"], idempotency_key=header, points=5)
    assert "Idempotency-Key" in assert_problem(response, 400)["errors"]


def member_count(app, program_id: int) -> int:
    with services(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(Member).where(Member.program_id == program_id))


def wallet_card(app, member: dict) -> dict:
    with services(app).sessions() as session:
        row = session.get(Member, member["id"])
        return {"serial": row.serial_number, "token": row.auth_token}
