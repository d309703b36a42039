"""Requests racing each other end in clean answers: one winner and 409s, serialised writes, never a 500 or a state
no request asked for. (On SQLite writers are serialised at BEGIN, so these pass there too; PostgreSQL is the race.)"""

from __future__ import annotations

import threading
import uuid
from io import BytesIO

import pytest
from PIL import Image
from sqlalchemy import func, select

from app import create_app
from app.api.idempotency import idempotent_write
from app.auth import auth as api_auth
from app.config import load_config
from app.models import ApiKey, Member, ProgramImage
from app.services import db_session, services
from tests.factories import assert_problem, auth, make_member, make_merchant, make_program


@pytest.fixture(scope="module")
def app(own_database_app):
    """This module's many earns and tier changes stay out of the shared database's outbox."""
    return own_database_app


def at_once(app, count: int, request) -> list:
    """Run `request(client, n)` in `count` threads released together; their responses, in thread order."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(n):
        with app.test_client() as client:
            barrier.wait()
            results[n] = request(client, n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_twenty_concurrent_enrolments_with_one_external_id_give_one_201_and_409s(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)

    def enrol(c, n):
        return c.post(f"/api/v1/programs/{program['id']}/members", json={"name": f"Till {n}", "external_id": "pos-42"},
                      headers=auth(key, f"enrol-{n}"))

    responses = at_once(app, 20, enrol)
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409)
    with services(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(Member).where(
            Member.program_id == program["id"], Member.external_id == "pos-42")) == 1


def test_eight_concurrent_image_uploads_all_succeed_and_leave_one_complete_set(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    colours = [(30 * n, 200 - 20 * n, 90, 255) for n in range(8)]

    def upload(c, n):
        return c.put(f"/api/v1/programs/{program['id']}/images/logo", headers=auth(key),
                     data={"file": (BytesIO(solid_png(colours[n])), "logo.png")})

    responses = at_once(app, 8, upload)
    assert [r.status_code for r in responses] == [200] * 8, [r.get_json() for r in responses]
    with services(app).sessions() as session:
        rows = session.execute(select(ProgramImage.filename, ProgramImage.data)
                               .where(ProgramImage.program_id == program["id"])).all()
    assert sorted(name for name, _ in rows) == ["logo.png", "logo@2x.png", "logo@3x.png"]
    seen = {centre_colour(data) for _, data in rows}
    assert len(seen) == 1 and seen.pop() in {c[:3] for c in colours}


def test_ten_concurrent_tier_patches_leave_exactly_one_requested_set(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    members = [make_member(client, key, program["id"], points=points) for points in (0, 300, 700, 1200)]
    wanted = [[{"name": f"Base {n}", "threshold": 0}, {"name": f"Mid {n}", "threshold": 100 * n + 50},
               {"name": f"Top {n}", "threshold": 1000 + n}] for n in range(10)]

    def patch(c, n):
        return c.patch(f"/api/v1/programs/{program['id']}", json={"tiers": wanted[n]}, headers=auth(key))

    responses = at_once(app, 10, patch)
    assert [r.status_code for r in responses] == [200] * 10, [r.get_json() for r in responses]
    final = client.get(f"/api/v1/programs/{program['id']}", headers=auth(key)).get_json()["tiers"]
    as_set = sorted((t["name"], t["threshold"]) for t in final)
    assert as_set in [sorted((t["name"], t["threshold"]) for t in tiers) for tiers in wanted]
    names = {t["name"] for t in final}
    for person in members:
        assert client.get(f"/api/v1/members/{person['id']}", headers=auth(key)).get_json()["tier"] in names


def test_a_unique_violation_at_commit_under_an_idempotency_key_is_409_not_a_replay(test_env):
    """Another unique rule broken at commit (here a duplicate API key hash) is no concurrent duplicate of the
    Idempotency-Key: there is no first response to replay."""
    app = create_app(load_config(test_env), testing=True)
    try:
        @app.post("/twice")
        @app.auth_required(api_auth)
        @idempotent_write
        def twice():
            session = db_session()
            existing = session.scalar(select(ApiKey).limit(1))
            session.add(ApiKey(merchant_id=existing.merchant_id, scope="pos", prefix="x", key_hash=existing.key_hash))
            return {"ok": True}, 201

        _, key = make_merchant(app)
        response = app.test_client().post("/twice", json={}, headers=auth(key, str(uuid.uuid4())))
    finally:
        services(app).engine.dispose()
    assert_problem(response, 409)


def solid_png(colour: tuple) -> bytes:
    buffer = BytesIO()
    Image.new("RGBA", (480, 150), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def centre_colour(png: bytes) -> tuple:
    image = Image.open(BytesIO(png)).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


def test_an_earn_waiting_on_a_device_registration_pushes_to_that_device(app, client):
    """The earn reads whom to push from its member row (apple_devices), not with a statement of its own: a
    registration in flight holds that row, so the earn waits for it and then sees the device. (On SQLite the
    registration's transaction holds the whole database, the same wait.)"""
    from app.domain.devices import register_device
    from app.domain.passupdates import APPLE_PUSH
    from app.models import OutboxEvent

    _, key = make_merchant(app)
    member_id = make_member(client, key, make_program(client, key)["id"])["id"]
    earned = []
    with services(app).sessions() as registering:
        register_device(registering, registering.get(Member, member_id), "device-in-flight", "ab" * 32, 5)
        earning = threading.Thread(target=lambda: earned.append(app.test_client().post(
            f"/api/v1/members/{member_id}/earn", json={"points": 7}, headers=auth(key, uuid.uuid4().hex))))
        earning.start()
        earning.join(0.5)
        assert earning.is_alive()  # waiting on the registration's lock of the member row
        registering.commit()
    earning.join(10)

    assert earned[0].status_code == 201
    with services(app).sessions() as session:
        pushes = session.scalars(select(OutboxEvent).where(OutboxEvent.member_id == member_id,
                                                           OutboxEvent.kind == APPLE_PUSH)).all()
    assert len(pushes) == 1  # the earn's: registering the device itself pushes nothing
