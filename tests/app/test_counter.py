"""The counter's other jobs: find a member by phone or email, enrol with a phone, print a receipt in the member's
language, know which key and store made each entry, and let a till undo only its own last minute."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from app.cli import cli
from app.models import LedgerEntry, utcnow
from app.receipts import PHRASES
from app.services import services
from passes.strings import LOCALES
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program, make_reward, redeem


@pytest.fixture
def shop(app, client, test_env):
    merchant_id, key = make_merchant(app)
    program = make_program(client, key)
    make_reward(client, key, program["id"], "Free Coffee", 200)
    return {"merchant_id": merchant_id, "key": key, "program": program, "env": test_env}


def till_key(shop, store: str | None = "Shibuya") -> dict:
    args = ["create-api-key", "--merchant", str(shop["merchant_id"]), "--scope", "pos"]
    result = CliRunner().invoke(cli, [*args, *(["--store", store] if store else [])], env=shop["env"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def lookup(client, key, **body):
    return client.post("/api/v1/checkout/lookup", json=body, headers=auth(key))


def reverse(client, key, transaction_id, **body):
    return client.post(f"/api/v1/transactions/{transaction_id}/reverse", json=body,
                       headers=auth(key, str(uuid.uuid4())))


# Find a member by phone or email


def test_enrolment_keeps_a_phone_as_e164_and_returns_it(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"], phone="+81 90-1234-5678")
    assert member["phone"] == "+819012345678"


@pytest.mark.parametrize("phone", ["090-1234-5678", "+0 123 4567", "+1 555", "+81 90 1234 5678 1234 5678", "call me"])
def test_a_phone_without_a_country_code_or_of_the_wrong_length_is_refused_naming_it(client, shop, phone):
    response = client.post(f"/api/v1/programs/{shop['program']['id']}/members", json={"name": "Ko", "phone": phone},
                           headers=auth(shop["key"]))
    assert "phone" in assert_problem(response, 422)["errors"]


def test_lookup_by_phone_finds_the_member_however_the_number_is_written(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"], points=250, phone="+44 20 7946 0958")

    found = lookup(client, shop["key"], phone="+44 (20) 7946-0958")

    assert found.status_code == 200, found.get_json()
    body = found.get_json()
    assert (body["id"], body["points_balance"], body["other_matches"]) == (member["id"], 250, [])
    assert [r["name"] for r in body["redeemable_rewards"]] == ["Free Coffee"]


def test_lookup_by_email_ignores_case(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"], email="Mina.Park@Example.com")
    assert member["email"] == "mina.park@example.com"
    assert lookup(client, shop["key"], email="MINA.PARK@example.com").get_json()["id"] == member["id"]


def test_a_shared_email_returns_the_newest_member_and_lists_the_others(client, shop):
    other_program = make_program(client, shop["key"], name="Bakery")
    older = make_member(client, shop["key"], shop["program"]["id"], email="family@example.com")
    newer = make_member(client, shop["key"], other_program["id"], email="family@example.com", name="Jun Park")

    body = lookup(client, shop["key"], email="family@example.com").get_json()

    assert body["id"] == newer["id"]
    assert body["other_matches"] == [{"id": older["id"], "program_id": shop["program"]["id"], "name": "Mina Park"}]


def test_lookup_by_phone_or_email_stays_within_the_merchant(app, client, shop):
    make_member(client, shop["key"], shop["program"]["id"], phone="+82 10 1234 5678", email="hana@example.com")
    _, rival = make_merchant(app, "Rival")
    assert_problem(lookup(client, rival, phone="+82 10 1234 5678"), 404)
    assert_problem(lookup(client, rival, email="hana@example.com"), 404)


@pytest.mark.parametrize("body", [{}, {"phone": "+82 10 1234 5678", "email": "a@example.com"},
                                  {"barcode": "x", "email": "a@example.com"}])
def test_lookup_takes_exactly_one_of_barcode_phone_or_email(client, shop, body):
    assert assert_problem(lookup(client, shop["key"], **body), 422)["errors"]


# Receipts


def test_an_earn_carries_a_receipt_line(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"], points=140)
    body = earn(client, shop["key"], member["id"], points=12).get_json()
    assert body["receipt"] == "+12 points · 152 available · 48 to Free Coffee"


def test_a_redeem_receipt_names_the_reward_in_japanese(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"], points=1250, locale="ja")
    reward = client.get(f"/api/v1/programs/{shop['program']['id']}", headers=auth(shop["key"])).get_json()["rewards"][0]
    body = redeem(client, shop["key"], member["id"], reward_id=reward["id"]).get_json()
    assert body["receipt"] == "Free Coffeeと交換 · 200ポイント利用 · ご利用可能 1,050ポイント"


def test_a_korean_receipt_counts_down_to_the_next_reward(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"], locale="ko")
    body = earn(client, shop["key"], member["id"], points=1).get_json()
    assert body["receipt"] == "1포인트 적립 · 사용 가능 1포인트 · Free Coffee까지 199포인트"


def test_a_single_point_reads_singular_in_english(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"])
    assert earn(client, shop["key"], member["id"], points=1).get_json()["receipt"].startswith("+1 point · 1 available")


def test_every_language_has_every_receipt_phrase():
    assert set(PHRASES) == set(LOCALES)
    assert all(set(PHRASES[locale]) == set(PHRASES["en"]) for locale in LOCALES)


# Who did what, where


def test_every_entry_records_the_key_and_store_that_made_it(client, shop):
    till = till_key(shop, "Shibuya")
    member = make_member(client, shop["key"], shop["program"]["id"], points=100)
    made = earn(client, till["api_key"], member["id"], points=5).get_json()["transaction"]
    assert (made["api_key_id"], made["store"]) == (till["id"], "Shibuya")

    entries = client.get(f"/api/v1/members/{member['id']}/transactions", headers=auth(shop["key"])).get_json()["data"]

    assert (entries[0]["api_key_id"], entries[0]["store"]) == (till["id"], "Shibuya")
    assert entries[1]["api_key_id"] != till["id"] and entries[1]["store"] is None  # the admin key's earn


def test_an_adjustment_either_way_records_the_admin_key_that_made_it(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"], points=100)
    for points in (25, -10):
        made = client.post(f"/api/v1/members/{member['id']}/adjust", json={"points": points, "reason": "Till mistake"},
                           headers=auth(shop["key"], str(points))).get_json()["transaction"]
        assert made["kind"] == "adjust" and made["api_key_id"] is not None


# Undo at the till


def test_a_till_may_undo_its_own_entry_within_a_minute(client, shop):
    till = till_key(shop)
    member = make_member(client, shop["key"], shop["program"]["id"], points=100)
    made = earn(client, till["api_key"], member["id"], points=30).get_json()["transaction"]

    undone = reverse(client, till["api_key"], made["id"])

    assert undone.status_code == 201, undone.get_json()
    assert undone.get_json()["member"]["points_balance"] == 100
    assert undone.get_json()["transaction"]["api_key_id"] == till["id"]


def test_a_till_may_not_undo_another_keys_entry(client, shop):
    first, second = till_key(shop), till_key(shop, "Ginza")
    member = make_member(client, shop["key"], shop["program"]["id"], points=100)
    made = earn(client, first["api_key"], member["id"], points=30).get_json()["transaction"]

    body = assert_problem(reverse(client, second["api_key"], made["id"]), 403)

    assert "admin key" in body["detail"]
    assert reverse(client, shop["key"], made["id"]).status_code == 201  # the owner's key may


def test_a_till_may_not_undo_its_own_entry_after_a_minute(app, client, shop):
    till = till_key(shop)
    member = make_member(client, shop["key"], shop["program"]["id"], points=100)
    made = earn(client, till["api_key"], member["id"], points=30).get_json()["transaction"]
    with services(app).sessions() as session:
        session.execute(update(LedgerEntry).where(LedgerEntry.id == made["id"])
                        .values(created_at=utcnow() - timedelta(seconds=61)))
        session.commit()

    assert_problem(reverse(client, till["api_key"], made["id"]), 403)
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(shop["key"])).get_json()["points_balance"] == 130


def test_a_hold_entry_is_not_reversed_but_voided(client, shop):
    member = make_member(client, shop["key"], shop["program"]["id"], points=100)
    placed = client.post("/api/v1/checkout/holds", json={"member_id": member["id"], "points": 10},
                         headers=auth(shop["key"])).get_json()
    entry = client.get(f"/api/v1/members/{member['id']}/transactions", headers=auth(shop["key"])).get_json()["data"][0]
    assert entry["kind"] == "hold"
    body = assert_problem(reverse(client, shop["key"], entry["id"]), 409)
    assert f"/api/v1/checkout/holds/{placed['id']}/void" in body["detail"]
