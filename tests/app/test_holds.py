"""Two-phase redeem at the counter: a hold sets points aside, capture spends them once, void or expiry gives them
back, and the member's statement, available points and card follow every step."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from app.domain.holds import expire_due_holds
from app.domain.ledger import verify_balances
from app.models import Hold, Member, utcnow
from app.services import services
from tests.factories import assert_problem, auth, make_member, make_merchant, make_program, make_reward, redeem
from workers.scheduled import run_due


@pytest.fixture
def shop(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    coffee = make_reward(client, key, program["id"], "Free Coffee", 100)
    member = make_member(client, key, program["id"], points=150)
    return {"key": key, "program": program, "coffee": coffee, "member": member}


def hold(client, key, idempotency_key=None, **body):
    return client.post("/api/v1/checkout/holds", json=body, headers=auth(key, idempotency_key or str(uuid.uuid4())))


def capture(client, key, hold_id):
    return client.post(f"/api/v1/checkout/holds/{hold_id}/capture", headers=auth(key))


def void(client, key, hold_id):
    return client.post(f"/api/v1/checkout/holds/{hold_id}/void", headers=auth(key))


def member_now(client, key, member_id) -> dict:
    return client.get(f"/api/v1/members/{member_id}", headers=auth(key)).get_json()


def statement(client, key, member_id) -> list[dict]:
    return client.get(f"/api/v1/members/{member_id}/transactions", headers=auth(key)).get_json()["data"]


def expire(app, hold_id: int) -> None:
    """Time passes for one hold: its expiry is moved into the past."""
    with services(app).sessions() as session:
        session.execute(update(Hold).where(Hold.id == hold_id).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()


def pass_version(app, member_id: int) -> int:
    with services(app).sessions() as session:
        return session.scalar(select(Member.pass_version).where(Member.id == member_id))


def card_points(client, key, member_id) -> int:
    """The number on the card's primary field, from the signed pass."""
    data = client.get(f"/api/v1/members/{member_id}/pass.pkpass", headers=auth(key)).data
    pass_json = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("pass.json"))
    return pass_json["storeCard"]["primaryFields"][0]["value"]


def test_a_hold_by_barcode_sets_points_aside_without_changing_the_balance(app, client, shop):
    key, member = shop["key"], shop["member"]
    before = datetime.now(timezone.utc)

    response = hold(client, key, barcode=member["barcode_value"], points=40)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["status"], body["points"], body["member_id"]) == ("held", 40, member["id"])
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(seconds=299) <= expires - before <= timedelta(seconds=302)  # the default TTL: 300 s
    assert (body["member"]["points_balance"], body["member"]["held_points"],
            body["member"]["available_points"]) == (150, 40, 110)
    assert member_now(client, key, member["id"])["available_points"] == 110


def test_held_points_cannot_be_spent_elsewhere(client, shop):
    key, member = shop["key"], shop["member"]
    assert hold(client, key, member_id=member["id"], points=120).status_code == 201

    assert_problem(redeem(client, key, member["id"], points=40), 409)
    assert_problem(hold(client, key, member_id=member["id"], points=40), 409)
    assert redeem(client, key, member["id"], points=30).status_code == 201


def test_too_few_points_is_409_and_writes_nothing(client, shop):
    key, member = shop["key"], shop["member"]
    before = statement(client, key, member["id"])

    body = assert_problem(hold(client, key, member_id=member["id"], points=151), 409)

    assert "150 available" in body["detail"]
    assert statement(client, key, member["id"]) == before
    assert member_now(client, key, member["id"])["held_points"] == 0


def test_capture_charges_once_and_a_repeat_returns_the_same(client, shop):
    key, member = shop["key"], shop["member"]
    placed = hold(client, key, member_id=member["id"], reward_id=shop["coffee"]["id"]).get_json()
    assert placed["points"] == 100 and placed["reward"]["name"] == "Free Coffee"

    first = capture(client, key, placed["id"])
    again = capture(client, key, placed["id"])

    assert first.status_code == again.status_code == 200
    captured, repeated = first.get_json(), again.get_json()
    assert captured["status"] == "captured" and captured["finished_at"]
    assert captured["transaction"]["kind"] == "capture" and captured["transaction"]["points"] == -100
    assert repeated["transaction"]["id"] == captured["transaction"]["id"]
    assert (captured["member"]["points_balance"], captured["member"]["held_points"]) == (50, 0)
    assert member_now(client, key, member["id"])["points_balance"] == 50
    assert captured["receipt"] == "Free Coffee · -100 points · 50 available · 50 to Free Coffee"


def test_void_gives_the_points_back_and_a_repeat_changes_nothing(client, shop):
    key, member = shop["key"], shop["member"]
    placed = hold(client, key, member_id=member["id"], points=60).get_json()

    first, again = void(client, key, placed["id"]), void(client, key, placed["id"])

    assert first.status_code == again.status_code == 200
    assert first.get_json()["status"] == again.get_json()["status"] == "voided"
    after = member_now(client, key, member["id"])
    assert (after["points_balance"], after["held_points"], after["available_points"]) == (150, 0, 150)
    assert [e["kind"] for e in statement(client, key, member["id"])][:2] == ["release", "hold"]


def test_capturing_a_voided_hold_is_409(client, shop):
    key, member = shop["key"], shop["member"]
    placed = hold(client, key, member_id=member["id"], points=60).get_json()
    void(client, key, placed["id"])

    assert_problem(capture(client, key, placed["id"]), 409)
    assert member_now(client, key, member["id"])["points_balance"] == 150


def test_voiding_a_captured_hold_is_409_and_points_to_the_reversal(client, shop):
    key, member = shop["key"], shop["member"]
    placed = hold(client, key, member_id=member["id"], points=60).get_json()
    transaction = capture(client, key, placed["id"]).get_json()["transaction"]

    body = assert_problem(void(client, key, placed["id"]), 409)

    assert f"/api/v1/transactions/{transaction['id']}/reverse" in body["detail"]
    assert member_now(client, key, member["id"])["points_balance"] == 90


def test_an_expired_hold_stops_counting_at_once_and_cannot_be_captured(app, client, shop):
    key, member = shop["key"], shop["member"]
    placed = hold(client, key, member_id=member["id"], points=60).get_json()

    expire(app, placed["id"])

    after = member_now(client, key, member["id"])
    assert (after["points_balance"], after["held_points"], after["available_points"]) == (150, 0, 150)
    looked_up = client.post("/api/v1/checkout/lookup", json={"barcode": member["barcode_value"]},
                            headers=auth(key)).get_json()
    assert looked_up["available_points"] == 150 and looked_up["active_holds"] == []
    assert client.get(f"/api/v1/checkout/holds/{placed['id']}", headers=auth(key)).get_json()["status"] == "expired"
    assert_problem(capture(client, key, placed["id"]), 409)
    assert member_now(client, key, member["id"])["points_balance"] == 150
    assert void(client, key, placed["id"]).get_json()["status"] == "expired"  # already released: nothing to do


def test_the_scheduled_job_records_the_release_of_expired_holds(app, client, shop):
    key, member = shop["key"], shop["member"]
    placed = hold(client, key, member_id=member["id"], points=60).get_json()
    version = pass_version(app, member["id"])
    expire(app, placed["id"])

    assert run_due(app, as_of=utcnow() + timedelta(hours=1))["expire_holds"] >= 1

    kinds = [(e["kind"], e["held"], e["hold_id"]) for e in statement(client, key, member["id"])]
    assert kinds[:2] == [("release", -60, placed["id"]), ("hold", 60, placed["id"])]
    assert pass_version(app, member["id"]) == version + 1  # the card updates
    with services(app).sessions() as session:
        assert session.get(Hold, placed["id"]).status == "expired"
        assert verify_balances(session) == []


def test_expire_due_holds_takes_the_instant_it_is_given(app, client, shop):
    """`punchpass jobs run-due --as-of` runs it for an instant other than now."""
    key, member = shop["key"], shop["member"]
    placed = hold(client, key, member_id=member["id"], points=60, ttl_seconds=120).get_json()
    with services(app).sessions() as session:
        expire_due_holds(session, utcnow())
        assert session.get(Hold, placed["id"]).status == "held"
        assert expire_due_holds(session, utcnow() + timedelta(seconds=121)) >= 1
        session.commit()
        assert session.get(Hold, placed["id"]).status == "expired"
    assert member_now(client, key, member["id"])["held_points"] == 0


def test_holds_appear_in_the_statement_with_who_made_them(app, client, shop):
    key, member = shop["key"], shop["member"]
    placed = hold(client, key, member_id=member["id"], points=25, reference="order-7").get_json()
    capture(client, key, placed["id"])

    newest = statement(client, key, member["id"])[:2]

    assert [(e["kind"], e["points"], e["held"], e["balance_after"]) for e in newest] == \
        [("capture", -25, -25, 125), ("hold", 0, 25, 150)]
    assert all(e["hold_id"] == placed["id"] and e["reference"] == "order-7" and e["api_key_id"] for e in newest)


def test_the_card_shows_available_points_after_each_step(app, client, shop):
    key, member = shop["key"], shop["member"]
    version = pass_version(app, member["id"])
    first = hold(client, key, member_id=member["id"], points=40).get_json()
    assert pass_version(app, member["id"]) == version + 1 and card_points(client, key, member["id"]) == 110
    capture(client, key, first["id"])
    assert pass_version(app, member["id"]) == version + 2 and card_points(client, key, member["id"]) == 110
    second = hold(client, key, member_id=member["id"], points=10).get_json()
    assert card_points(client, key, member["id"]) == 100
    void(client, key, second["id"])
    assert pass_version(app, member["id"]) == version + 4 and card_points(client, key, member["id"]) == 110


def test_a_retried_hold_with_the_same_key_holds_once(client, shop):
    key, member = shop["key"], shop["member"]
    first = hold(client, key, "till-1-sale-9", member_id=member["id"], points=30)
    again = hold(client, key, "till-1-sale-9", member_id=member["id"], points=30)

    assert first.status_code == again.status_code == 201
    assert first.get_json()["id"] == again.get_json()["id"]
    assert member_now(client, key, member["id"])["held_points"] == 30


@pytest.mark.parametrize("body, field", [
    ({"points": 10}, "barcode"),
    ({"barcode": "x", "member_id": 1, "points": 10}, "member_id"),
    ({"member_id": 1}, "points"),
    ({"member_id": 1, "points": 10, "reward_id": 1}, "reward_id"),
    ({"member_id": 1, "points": 10, "ttl_seconds": 3601}, "ttl_seconds"),
    ({"member_id": 1, "points": 10, "ttl_seconds": 0}, "ttl_seconds"),
])
def test_a_malformed_hold_names_the_field(client, shop, body, field):
    assert field in assert_problem(hold(client, shop["key"], **body), 422)["errors"]


def test_a_till_key_may_hold_capture_and_void(app, client, shop):
    from tests.factories import make_api_key
    with services(app).sessions() as session:
        merchant_id = session.scalar(select(Member.merchant_id).where(Member.id == shop["member"]["id"]))
    till = make_api_key(app, merchant_id, "pos")
    placed = hold(client, till, barcode=shop["member"]["barcode_value"], points=10).get_json()
    assert capture(client, till, placed["id"]).status_code == 200
    other = hold(client, till, barcode=shop["member"]["barcode_value"], points=10).get_json()
    assert void(client, till, other["id"]).status_code == 200


def test_an_unknown_hold_or_barcode_is_404(client, shop):
    assert_problem(capture(client, shop["key"], 987654321), 404)
    assert_problem(hold(client, shop["key"], barcode="no-such-card", points=10), 404)
