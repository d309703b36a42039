"""A till that retries after a timeout must never count a purchase twice."""

from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.factories import auth, earn, make_member, make_merchant, make_png, make_program, redeem


@pytest.fixture
def member_and_key(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    return make_member(client, key, program["id"]), key


def test_retry_with_same_idempotency_key_earns_once(client, member_and_key):
    member, key = member_and_key
    first = earn(client, key, member["id"], idempotency_key="order-42", points=40, reference="order-42")
    second = earn(client, key, member["id"], idempotency_key="order-42", reference="order-42", points=40)
    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["points_balance"] == 40


def test_same_key_with_a_different_body_is_422(client, member_and_key):
    member, key = member_and_key
    earn(client, key, member["id"], idempotency_key="k1", points=40)
    response = earn(client, key, member["id"], idempotency_key="k1", points=41)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "Idempotency-Key" in response.get_json()["errors"]


def test_same_key_on_another_member_is_422_not_a_silent_replay(client, member_and_key):
    member, key = member_and_key
    other = make_member(client, key, member["program_id"])
    earn(client, key, member["id"], idempotency_key="k2", points=5)
    assert earn(client, key, other["id"], idempotency_key="k2", points=5).status_code == 422


def test_failed_validation_is_not_stored(client, member_and_key):
    member, key = member_and_key
    assert earn(client, key, member["id"], idempotency_key="k3", points=-1).status_code == 422
    assert earn(client, key, member["id"], idempotency_key="k3", points=7).status_code == 201


def test_refused_redeem_can_be_retried_with_the_same_key_once_points_arrive(client, member_and_key):
    member, key = member_and_key
    assert redeem(client, key, member["id"], idempotency_key="r1", points=10).status_code == 409
    earn(client, key, member["id"], points=10)
    assert redeem(client, key, member["id"], idempotency_key="r1", points=10).status_code == 201


def test_retried_redeem_replays_its_success_after_the_points_are_spent(client, member_and_key):
    member, key = member_and_key
    earn(client, key, member["id"], points=10)
    first = redeem(client, key, member["id"], idempotency_key="r2", points=10)
    second = redeem(client, key, member["id"], idempotency_key="r2", points=10)
    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"


def test_a_used_key_with_an_invalid_body_is_422_for_the_key(client, member_and_key):
    member, key = member_and_key
    earn(client, key, member["id"], idempotency_key="k4", points=5)
    response = earn(client, key, member["id"], idempotency_key="k4", points=-1)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]


def test_keys_are_scoped_per_merchant(app, client, member_and_key):
    member, key = member_and_key
    _, other_key = make_merchant(app, "Other shop")
    other_program = make_program(client, other_key)
    other_member = make_member(client, other_key, other_program["id"])
    earn(client, key, member["id"], idempotency_key="shared", points=3)
    assert earn(client, other_key, other_member["id"], idempotency_key="shared", points=3).status_code == 201


def test_concurrent_duplicates_count_once(app, member_and_key):
    member, key = member_and_key

    def attempt(_):
        with app.test_client() as c:
            return earn(c, key, member["id"], idempotency_key="burst", points=25)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(attempt, range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.get_data() for r in responses}) == 1
    with app.test_client() as c:
        assert c.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["points_balance"] == 25


def upload_logo(client, key: str, program_id: int, png: bytes, boundary: str):
    """A multipart upload with a chosen boundary, as two sends of one retrying client would differ."""
    upload = FileStorage(BytesIO(png), "logo.png", content_type="image/png")
    _, body = encode_multipart({"file": upload}, boundary=boundary)
    return client.put(f"/api/v1/programs/{program_id}/images/logo", data=body,
                      content_type=f"multipart/form-data; boundary={boundary}", headers=auth(key, "logo-1"))


def test_retried_upload_with_a_new_multipart_boundary_replays_the_first_response(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    png = make_png(600, 200)
    first = upload_logo(client, key, program["id"], png, "boundary-first-send")
    second = upload_logo(client, key, program["id"], png, "boundary-second-send")
    assert first.status_code == second.status_code == 200, second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()


def test_another_file_with_the_same_key_is_422(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    assert upload_logo(client, key, program["id"], make_png(600, 200), "b1").status_code == 200
    response = upload_logo(client, key, program["id"], make_png(601, 200), "b1")
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
