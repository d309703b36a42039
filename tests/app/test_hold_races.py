"""Tills racing on one card's holds: the balance is never over-held, and a capture racing a void ends in exactly
one outcome. (SQLite serialises writers, so these pass there too; PostgreSQL is the real race.)"""

from __future__ import annotations

import pytest

from app.domain.ledger import verify_balances
from app.services import services
from tests.app.test_races import at_once
from tests.factories import auth, make_member, make_merchant, make_program


@pytest.fixture(scope="module")
def app(own_database_app):
    return own_database_app


def test_fifty_concurrent_holds_for_a_balance_affording_ten_let_exactly_ten_through(app, client):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"], points=100)

    responses = at_once(app, 50, lambda c, n: c.post(
        "/api/v1/checkout/holds", json={"barcode": member["barcode_value"], "points": 10},
        headers=auth(key, f"till-{n}")))

    assert sorted(r.status_code for r in responses) == [201] * 10 + [409] * 40
    after = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert (after["points_balance"], after["held_points"], after["available_points"]) == (100, 100, 0)
    with services(app).sessions() as session:
        assert verify_balances(session) == []


def test_a_capture_racing_a_void_ends_in_exactly_one_outcome(app, client):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"], points=1000)
    holds = [client.post("/api/v1/checkout/holds", json={"member_id": member["id"], "points": 10},
                         headers=auth(key, f"hold-{n}")).get_json() for n in range(10)]

    def capture_or_void(c, n):
        action = "capture" if n % 2 == 0 else "void"
        return c.post(f"/api/v1/checkout/holds/{holds[n // 2]['id']}/{action}", headers=auth(key))

    responses = at_once(app, 20, capture_or_void)

    captured = 0
    for n in range(10):
        on_capture, on_void = responses[2 * n], responses[2 * n + 1]
        assert sorted([on_capture.status_code, on_void.status_code]) == [200, 409], (on_capture.get_json(),
                                                                                    on_void.get_json())
        captured += on_capture.status_code == 200
    after = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert (after["points_balance"], after["held_points"]) == (1000 - 10 * captured, 0)
    with services(app).sessions() as session:
        assert verify_balances(session) == []


def test_ten_concurrent_captures_of_one_hold_charge_once(app, client):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"], points=100)
    placed = client.post("/api/v1/checkout/holds", json={"member_id": member["id"], "points": 30},
                         headers=auth(key, "one")).get_json()

    responses = at_once(app, 10, lambda c, n: c.post(f"/api/v1/checkout/holds/{placed['id']}/capture",
                                                     headers=auth(key)))

    assert [r.status_code for r in responses] == [200] * 10
    assert len({r.get_json()["transaction"]["id"] for r in responses}) == 1
    after = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert (after["points_balance"], after["held_points"]) == (70, 0)
