"""Plain functions that make test data through the public API, as a merchant's code would."""

from __future__ import annotations

import uuid
from io import BytesIO

from PIL import Image
from sqlalchemy import select

from app.auth import hash_api_key, issue_api_key
from app.auth import revoke_api_key as revoke_key
from app.models import ApiKey, Merchant
from app.services import services

TEST_PASS_TYPE_ID = "pass.test.punchpass"
TEST_TEAM_ID = "PUNCHTEST1"


def make_merchant(app, name: str = "Test Café") -> tuple[int, str]:
    """A merchant and its admin key."""
    with app.app_context():
        session = services(app).sessions()
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
        session = services(app).sessions()
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


def make_png(width: int = 320, height: int = 100) -> bytes:
    """A small valid PNG upload."""
    buffer = BytesIO()
    Image.new("RGBA", (width, height), (200, 120, 40, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def revoke_api_key(app, raw_key: str) -> None:
    """As an operator does (`punchpass revoke-api-key`): through the domain, so every process's cache hears of it."""
    with app.app_context():
        session = services(app).sessions()
        revoke_key(session, session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_api_key(raw_key))))
        session.commit()
        session.close()


def assert_problem(response, status: int) -> dict:
    """An RFC 9457 problem with the given status, and never a stack trace."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, (response.status_code, text)
    assert response.mimetype == "application/problem+json", (response.mimetype, text)
    assert "Traceback" not in text and 'File "' not in text, text
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"], body
    return body


def merchant_api_routes(app) -> list[tuple[str, object]]:
    """Every (method, url rule) of the merchant API, read from the app so a new route is covered at once."""
    return sorted(((method, rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
                   for method in rule.methods - {"HEAD", "OPTIONS"}), key=lambda item: (item[1].rule, item[0]))
