"""Whatever a client sends (NUL, lone surrogates, control characters, huge integers, deep nesting; in JSON fields,
path segments and query strings), the answer is never a 5xx, the merchant API answers problem+json, and a refused
request writes nothing. Apple's web service answers plain status codes by its protocol: a 4xx there is right."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.models import LedgerEntry, Member, Program, Tier
from app.services import services
from tests.factories import TEST_PASS_TYPE_ID, auth, make_member, make_merchant, make_program, make_reward

BOUNDED = settings(max_examples=50, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])
NASTY = st.sampled_from(["\x00", "\ud800", "\udfff", "\x01", "\x1b", "\x7f", "\n", "\u2028", "\ufeff", "²", "٣", "/"])
HOSTILE_TEXT = st.text(st.one_of(NASTY, st.characters(exclude_categories=())), max_size=30)
UNSTORABLE_TEXT = st.builds("".join, st.tuples(HOSTILE_TEXT, st.sampled_from(["\x00", "\ud800", "\udfff"]),
                                                HOSTILE_TEXT))
BEYOND_BIGINT = st.one_of(st.integers(min_value=2**63, max_value=2**64), st.integers(min_value=2**63, max_value=2**200),
                          st.integers(min_value=-(2**80), max_value=-(2**63) - 1))


@pytest.fixture(scope="module")
def shop(app):
    client = app.test_client()
    _, key = make_merchant(app)
    program = make_program(client, key)
    member = make_member(client, key, program["id"], points=50)
    reward = make_reward(client, key, program["id"])
    with services(app).sessions() as session:
        row = session.get(Member, member["id"])
        card = {"serial": row.serial_number, "token": row.auth_token}
    return {"key": key, "program": program, "member": member, "reward": reward, "card": card}


def written(app, shop) -> tuple:
    """Everything a request against this shop could write."""
    program_id, merchant_program = shop["program"]["id"], shop["program"]
    with services(app).sessions() as session:
        def count(model, *where):
            return session.scalar(select(func.count()).select_from(model).where(*where))
        merchant_id = session.get(Program, program_id).merchant_id
        return (count(Program, Program.merchant_id == merchant_id), count(Member, Member.program_id == program_id),
                count(LedgerEntry, LedgerEntry.member_id == shop["member"]["id"]),
                count(Tier, Tier.program_id == merchant_program["id"]),
                session.get(Member, shop["member"]["id"]).points_balance)


def send(client, method: str, path: str, body=None, headers=None, raw: str | None = None):
    data = raw if raw is not None else None if body is None else json.dumps(body)
    return client.open(path, method=method, data=data, headers=headers or {},
                       content_type="application/json" if data is not None else None)


def assert_clean(response, api: bool) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    if api and response.status_code >= 400:
        assert response.mimetype == "application/problem+json", response.mimetype


def segment(text: str) -> str:
    """A path segment as a hostile client's raw bytes: lone surrogates as their (invalid) UTF-8."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="") or "%00"


def json_requests(shop, value) -> list[tuple[str, str, dict]]:
    program_id, member_id = shop["program"]["id"], shop["member"]["id"]
    return [
        ("POST", "/api/v1/programs", {"name": value}),
        ("POST", "/api/v1/programs",
         {"name": "Hostile", "currency": value, "tiers": [{"name": value, "threshold": 1}]}),
        ("PATCH", f"/api/v1/programs/{program_id}", {"branding": {"logo_text": value}, "terms": value}),
        ("POST", f"/api/v1/programs/{program_id}/members", {"name": value, "external_id": value, "email": value}),
        ("POST", f"/api/v1/members/{member_id}/earn", {"points": 5, "reference": value, value: value}),
        ("POST", f"/api/v1/members/{member_id}/redeem", {"points": 5, "reason": value}),
        ("POST", "/api/v1/checkout/lookup", {"barcode": value}),
    ]


@BOUNDED
@given(value=UNSTORABLE_TEXT, which=st.integers(0, 6))
def test_unstorable_text_in_any_json_field_is_a_4xx_problem_and_writes_nothing(app, shop, value, which):
    method, path, body = json_requests(shop, value)[which]
    before = written(app, shop)
    response = send(app.test_client(), method, path, body, auth(shop["key"]))
    assert_clean(response, api=True)
    assert 400 <= response.status_code < 500
    assert written(app, shop) == before


@BOUNDED
@given(value=HOSTILE_TEXT, which=st.sampled_from([0, 3, 4, 6]))
def test_any_text_in_json_fields_is_never_a_5xx(app, shop, value, which):
    method, path, body = json_requests(shop, value)[which]
    before = written(app, shop)
    response = send(app.test_client(), method, path, body, auth(shop["key"]))
    assert_clean(response, api=True)
    if response.status_code >= 400:
        assert written(app, shop) == before


@BOUNDED
@given(text=HOSTILE_TEXT, which=st.integers(0, 6))
def test_any_path_segment_or_query_value_is_never_a_5xx(app, shop, text, which):
    card, bad = shop["card"], segment(text)
    apple = {"Authorization": f"ApplePass {card['token']}"}
    method, path, headers, body = [
        ("GET", f"/cards/{bad}.pkpass", {}, None),
        ("GET", f"/wallet/v1/devices/{bad}/registrations/{TEST_PASS_TYPE_ID}?passesUpdatedSince={bad}", {}, None),
        ("POST", f"/wallet/v1/devices/{bad}/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}", apple,
         {"pushToken": text}),
        ("DELETE", f"/wallet/v1/devices/{bad}/registrations/{TEST_PASS_TYPE_ID}/{bad}", apple, None),
        ("GET", f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{bad}", apple, None),
        ("GET", f"/api/v1/members/{bad}", auth(shop["key"]), None),
        ("GET", f"/api/v1/members/{shop['member']['id']}/transactions?before={bad}&limit={bad}", auth(shop["key"]),
         None),
    ][which]
    before = written(app, shop)
    response = send(app.test_client(), method, path, body, headers)
    assert_clean(response, api=path.startswith("/api/"))
    assert written(app, shop) == before


@BOUNDED
@given(number=BEYOND_BIGINT, which=st.integers(0, 6))
def test_huge_integers_anywhere_are_a_4xx_problem_and_write_nothing(app, shop, number, which):
    member_id, program_id = shop["member"]["id"], shop["program"]["id"]
    method, path, body = [
        ("GET", f"/api/v1/members/{number}", None),
        ("GET", f"/api/v1/programs/{number}", None),
        ("POST", f"/api/v1/transactions/{number}/reverse", {}),
        ("GET", f"/api/v1/members/{member_id}/transactions?before={number}", None),
        ("POST", f"/api/v1/members/{member_id}/redeem", {"reward_id": number}),
        ("POST", f"/api/v1/members/{member_id}/earn", {"points": number}),
        ("PATCH", f"/api/v1/programs/{program_id}", {"tiers": [{"id": number, "name": "X", "threshold": number}]}),
    ][which]
    before = written(app, shop)
    response = send(app.test_client(), method, path, body, auth(shop["key"]))
    assert_clean(response, api=True)
    assert 400 <= response.status_code < 500
    assert written(app, shop) == before


@BOUNDED
@given(depth=st.integers(33, 20_000), opener=st.sampled_from(["[", '{"a":']), which=st.integers(0, 3))
def test_deep_nesting_is_a_4xx_and_writes_nothing(app, shop, depth, opener, which):
    nested = opener * depth + "1" + ("]" if opener == "[" else "}") * depth
    card = shop["card"]
    method, path, raw, api = [
        ("POST", f"/api/v1/programs/{shop['program']['id']}/members", '{"name": %s}' % nested, True),
        ("POST", f"/api/v1/members/{shop['member']['id']}/earn", '{"points": 1, "x": %s}' % nested, True),
        ("POST", "/wallet/v1/log", '{"logs": %s}' % nested, False),
        ("POST", f"/wallet/v1/devices/deep/registrations/{TEST_PASS_TYPE_ID}/{card['serial']}",
         '{"pushToken": %s}' % nested, False),
    ][which]
    before = written(app, shop)
    response = send(app.test_client(), method, path, raw=raw,
                    headers={**auth(shop["key"]), "Authorization": f"ApplePass {card['token']}"} if not api
                    else auth(shop["key"]))
    assert_clean(response, api=api)
    assert 400 <= response.status_code < 500
    assert written(app, shop) == before
