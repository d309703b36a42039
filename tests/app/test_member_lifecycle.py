"""Members after enrolment: corrected, listed and searched, deleted on request; rewards edited and retired."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

from sqlalchemy import func, select

from app.domain import events
from app.domain.ledger import verify_balances
from app.models import LedgerEntry, Member, OutboxEvent
from app.services import services
from tests.factories import (
    assert_problem,
    auth,
    earn,
    make_member,
    make_merchant,
    make_program,
    make_reward,
    redeem,
)
from tests.workers.test_wallet_push import Device


def card(client, member: dict) -> dict:
    """The pass.json behind the member's public card link."""
    response = client.get(member["apple_pass_url"].replace("https://punchpass.test", ""))
    assert response.status_code == 200
    return json.loads(zipfile.ZipFile(io.BytesIO(response.data)).read("pass.json"))


def patch_member(client, key, member_id, **body):
    return client.patch(f"/api/v1/members/{member_id}", json=body, headers=auth(key))


def list_members(client, key, program_id, **query):
    return client.get(f"/api/v1/programs/{program_id}/members", query_string=query, headers=auth(key))


def pass_version(app, member_id: int) -> int:
    with services(app).sessions() as session:
        return session.get(Member, member_id).pass_version


def a_program(app, client):
    _, key = make_merchant(app)
    return key, make_program(client, key)


# --- PATCH /members/{id}


def test_patch_changes_the_given_fields_and_a_new_name_reaches_the_card(app, client):
    key, program = a_program(app, client)
    member = make_member(client, key, program["id"], email="mina@example.com")

    response = patch_member(client, key, member["id"], name="Mina Kim", phone="+82 10-1234-5678",
                            external_id="crm-7", locale="ko", email="Mina.Kim@Example.com")

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["name"], body["external_id"], body["locale"], body["email"]) == \
        ("Mina Kim", "crm-7", "ko", "mina.kim@example.com")
    assert "Mina Kim" in json.dumps(card(client, body))


def test_patching_only_what_the_card_does_not_show_leaves_the_card_alone(app, client):
    key, program = a_program(app, client)
    member = make_member(client, key, program["id"])
    version = pass_version(app, member["id"])

    assert patch_member(client, key, member["id"], email="new@example.com").status_code == 200
    assert pass_version(app, member["id"]) == version
    assert patch_member(client, key, member["id"], name="Someone Else").status_code == 200
    assert pass_version(app, member["id"]) == version + 1


def test_null_clears_an_optional_field(app, client):
    key, program = a_program(app, client)
    member = make_member(client, key, program["id"], email="x@example.com", external_id="e-1")

    body = patch_member(client, key, member["id"], email=None, external_id=None).get_json()

    assert body["email"] is None and body["external_id"] is None


def test_an_external_id_another_member_has_is_a_conflict(app, client):
    key, program = a_program(app, client)
    make_member(client, key, program["id"], external_id="taken")
    member = make_member(client, key, program["id"])

    assert_problem(patch_member(client, key, member["id"], external_id="taken"), 409)
    assert patch_member(client, key, member["id"], external_id="free").status_code == 200


def test_bad_fields_are_422_naming_each(app, client):
    key, program = a_program(app, client)
    member = make_member(client, key, program["id"])

    body = assert_problem(patch_member(client, key, member["id"], name="", locale="fr", phone="12", email="no"), 422)

    assert set(body["errors"]) == {"name", "locale", "phone", "email"}


# --- GET /programs/{id}/members


def test_search_matches_part_of_name_email_phone_or_external_id_ignoring_case(app, client):
    key, program = a_program(app, client)
    ada = make_member(client, key, program["id"], name="Ada Lovelace", email="ada@example.com")
    grace = make_member(client, key, program["id"], name="Grace Hopper", external_id="POS-0042")
    patch_member(client, key, grace["id"], phone="+1 555 0100 999")

    def found(q):
        return [m["id"] for m in list_members(client, key, program["id"], q=q).get_json()["data"]]

    assert found("lovelace") == [ada["id"]]
    assert found("ADA@EXAMPLE") == [ada["id"]]
    assert found("pos-00") == [grace["id"]]
    assert found("5550100") == [grace["id"]]
    assert found("%") == [] and found("_") == []  # LIKE wildcards are plain characters here


def test_list_pages_newest_first_by_id_and_filters_by_tier(app, client):
    key, program = a_program(app, client)
    made = [make_member(client, key, program["id"], name=f"Member {n}") for n in range(5)]
    gold = make_member(client, key, program["id"], name="Gold member", points=600)

    first = list_members(client, key, program["id"], limit=4).get_json()
    second = list_members(client, key, program["id"], limit=4, before=first["next_before"]).get_json()

    ids = [m["id"] for m in first["data"] + second["data"]]
    assert ids == sorted(ids, reverse=True) == [gold["id"], *[m["id"] for m in reversed(made)]]
    assert second["next_before"] is None
    assert [m["id"] for m in list_members(client, key, program["id"], tier="Gold").get_json()["data"]] == [gold["id"]]
    assert list_members(client, key, program["id"], tier="Platinum").get_json()["data"] == []


def test_another_merchants_program_cannot_be_listed(app, client):
    key, program = a_program(app, client)
    make_member(client, key, program["id"], name="Private Person")
    _, rival = make_merchant(app, "Rival")

    response = list_members(client, rival, program["id"])

    assert "Private Person" not in assert_problem(response, 404).get("detail", "")


def test_bad_list_queries_are_422(app, client):
    key, program = a_program(app, client)

    assert_problem(list_members(client, key, program["id"], limit=0), 422)
    assert_problem(list_members(client, key, program["id"], before="x"), 422)


# --- DELETE /members/{id}


def test_delete_anonymises_keeps_the_ledger_and_voids_the_card_on_its_devices(app, client):
    key, program = a_program(app, client)
    member = make_member(client, key, program["id"], name="Erase Me", email="erase@example.com",
                         external_id="crm-erase", points=120)
    patch_member(client, key, member["id"], phone="+81 90 1234 5678")
    device = Device(client, client.get(member["apple_pass_url"].replace("https://punchpass.test", "")).data)
    assert device.register().status_code == 201

    response = client.delete(f"/api/v1/members/{member['id']}", headers=auth(key))

    assert response.status_code == 204
    with services(app).sessions() as session:
        row = session.get(Member, member["id"])
        entries = session.scalar(select(func.count()).where(LedgerEntry.member_id == member["id"]))
        pushes = session.scalar(select(func.count()).where(OutboxEvent.member_id == member["id"],
                                                           OutboxEvent.kind == "apple_push"))
        mismatches = verify_balances(session)
    assert (row.name, row.email, row.phone, row.external_id) == ("Deleted member", None, None, None)
    assert entries == 1 and row.points_balance == 120 and member["id"] not in [m["member_id"] for m in mismatches]
    assert pushes >= 1  # the devices hear of the change
    assert member["serial_number"] in device.updated_serials()
    voided = device.fetch_pass()
    assert voided["voided"] is True and "Erase Me" not in json.dumps(voided)
    assert card(client, member)["voided"] is True  # the card link still answers


def test_a_deleted_member_is_found_nowhere_and_can_neither_earn_nor_be_deleted_again(app, client):
    key, program = a_program(app, client)
    member = make_member(client, key, program["id"], name="Gone Soon", external_id="crm-gone", points=50)
    client.delete(f"/api/v1/members/{member['id']}", headers=auth(key))

    assert_problem(client.get(f"/api/v1/members/{member['id']}", headers=auth(key)), 404)
    assert_problem(earn(client, key, member["id"], points=5), 404)
    assert_problem(redeem(client, key, member["id"], points=5), 404)
    assert_problem(patch_member(client, key, member["id"], name="Back"), 404)
    assert_problem(client.delete(f"/api/v1/members/{member['id']}", headers=auth(key)), 404)
    lookup = client.post("/api/v1/checkout/lookup", json={"barcode": member["barcode_value"]}, headers=auth(key))
    assert_problem(lookup, 404)
    assert list_members(client, key, program["id"], q="Gone").get_json()["data"] == []
    again = make_member(client, key, program["id"], external_id="crm-gone")  # the external id is free again
    assert again["id"] != member["id"]


def test_delete_sends_member_deleted_to_whoever_listens(app, client):
    key, program = a_program(app, client)
    member = make_member(client, key, program["id"])
    events.add_channel("test-deletions", lambda session, merchant_id, type, member_id: type == "member.deleted")
    try:
        client.delete(f"/api/v1/members/{member['id']}", headers=auth(key))
    finally:
        events._channels.pop("test-deletions")

    with services(app).sessions() as session:
        row = session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "test-deletions",
                                                        OutboxEvent.member_id == member["id"])).one()
    assert row.payload["event"]["type"] == "member.deleted"
    assert row.payload["event"]["data"]["member_id"] == member["id"]
    assert "Mina" not in json.dumps(row.payload)  # no personal data in the event


def test_a_retried_delete_with_its_idempotency_key_is_replayed(app, client):
    key, program = a_program(app, client)
    member = make_member(client, key, program["id"])
    retry = str(uuid.uuid4())

    first = client.delete(f"/api/v1/members/{member['id']}", headers=auth(key, retry))
    second = client.delete(f"/api/v1/members/{member['id']}", headers=auth(key, retry))

    assert (first.status_code, second.status_code) == (204, 204)


# --- PATCH and DELETE /rewards/{id}


def rewards_of(client, key, program_id) -> list[dict]:
    return client.get(f"/api/v1/programs/{program_id}", headers=auth(key)).get_json()["rewards"]


def test_a_reward_can_be_renamed_repriced_and_switched_off_and_on(app, client):
    key, program = a_program(app, client)
    reward = make_reward(client, key, program["id"], points_cost=100)
    member = make_member(client, key, program["id"], points=80)

    changed = client.patch(f"/api/v1/rewards/{reward['id']}", json={"name": "Big coffee", "points_cost": 75},
                           headers=auth(key))
    assert changed.status_code == 200 and changed.get_json()["points_cost"] == 75
    assert redeem(client, key, member["id"], reward_id=reward["id"]).status_code == 201

    client.patch(f"/api/v1/rewards/{reward['id']}", json={"active": False}, headers=auth(key))
    assert rewards_of(client, key, program["id"]) == []
    assert_problem(redeem(client, key, member["id"], reward_id=reward["id"]), 422)
    client.patch(f"/api/v1/rewards/{reward['id']}", json={"active": True}, headers=auth(key))
    assert [r["name"] for r in rewards_of(client, key, program["id"])] == ["Big coffee"]


def test_a_retired_reward_is_kept_for_history_but_never_redeemable_shown_or_editable(app, client):
    key, program = a_program(app, client)
    reward = make_reward(client, key, program["id"], points_cost=10)
    member = make_member(client, key, program["id"], points=100)
    redeemed = redeem(client, key, member["id"], reward_id=reward["id"]).get_json()["transaction"]

    assert client.delete(f"/api/v1/rewards/{reward['id']}", headers=auth(key)).status_code == 204

    assert rewards_of(client, key, program["id"]) == []
    assert_problem(redeem(client, key, member["id"], reward_id=reward["id"]), 422)
    assert_problem(client.patch(f"/api/v1/rewards/{reward['id']}", json={"active": True}, headers=auth(key)), 404)
    assert_problem(client.delete(f"/api/v1/rewards/{reward['id']}", headers=auth(key)), 404)
    statement = client.get(f"/api/v1/members/{member['id']}/transactions", headers=auth(key)).get_json()
    assert statement["data"][0]["id"] == redeemed["id"] and statement["data"][0]["reward_id"] == reward["id"]


def test_bad_reward_patches_are_422(app, client):
    key, program = a_program(app, client)
    reward = make_reward(client, key, program["id"])

    body = assert_problem(client.patch(f"/api/v1/rewards/{reward['id']}", json={"points_cost": 0, "name": "",
                                                                              "active": 0}, headers=auth(key)), 422)

    assert set(body["errors"]) == {"points_cost", "name", "active"}
