"""Plain functions that make test data through the public API, as a merchant's code would."""

from __future__ import annotations

import uuid

from app.auth import issue_api_key
from app.models import Merchant

TEST_PASS_TYPE_ID = "pass.test.punchpass"
TEST_TEAM_ID = "PUNCHTEST1"


def make_merchant(app, name: str = "Test Café") -> tuple[int, str]:
    """A merchant and its admin key."""
    with app.app_context():
        session = app.extensions["punchpass"]["sessions"]()
        merchant = Merchant(name=name)
        session.add(merchant)
        session.flush()
        key = issue_api_key(session, merchant.id, "admin")
        session.commit()
        merchant_id = merchant.id
        session.close()
    return merchant_id, key


def make_api_key(app, merchant_id: int, scope: str) -> str:
    with app.app_context():
        session = app.extensions["punchpass"]["sessions"]()
        key = issue_api_key(session, merchant_id, scope)
        session.commit()
        session.close()
    return key


def auth(key: str, idempotency_key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def make_program(client, key: str, **fields) -> dict:
    body = {"name": "Bean There", "tiers": [{"name": "Bronze", "threshold": 0}, {"name": "Gold", "threshold": 500}],
            **fields}
    response = client.post("/api/v1/programs", json=body, headers=auth(key))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def make_reward(client, key: str, program_id: int, name: str = "Free coffee", points_cost: int = 100) -> dict:
    response = client.post(f"/api/v1/programs/{program_id}/rewards", json={"name": name, "points_cost": points_cost},
                           headers=auth(key))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def make_member(client, key: str, program_id: int, points: int = 0, **fields) -> dict:
    response = client.post(f"/api/v1/programs/{program_id}/members", json={"name": "Mina Park", **fields},
                           headers=auth(key))
    assert response.status_code == 201, response.get_json()
    member = response.get_json()
    if points:
        member = earn(client, key, member["id"], points=points).get_json()["member"]
    return member


def earn(client, key: str, member_id: int, idempotency_key: str | None = None, **body):
    return client.post(f"/api/v1/members/{member_id}/earn", json=body,
                       headers=auth(key, idempotency_key or str(uuid.uuid4())))


def redeem(client, key: str, member_id: int, idempotency_key: str | None = None, **body):
    return client.post(f"/api/v1/members/{member_id}/redeem", json=body,
                       headers=auth(key, idempotency_key or str(uuid.uuid4())))
