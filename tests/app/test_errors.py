"""Every error is `application/problem+json` (status, title, detail; `errors` keyed by field for bad input), never
HTML and never a traceback; a refused write writes nothing."""

from __future__ import annotations

import pytest

from app import create_app
from app.config import load_config
from app.services import services
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program, redeem


@pytest.mark.parametrize("body, field", [
    ({"currency": "USD"}, "name"),
    ({"name": "Bean There", "branding": {"background_color": "blue"}}, "branding.background_color"),
    ({"name": "Bean There", "locales": ["fr"]}, "locales.0"),
    ({"name": "Bean There", "colour": "red"}, "colour"),
])
def test_invalid_program_is_422_naming_the_field(app, client, body, field):
    _, key = make_merchant(app)
    response = client.post("/api/v1/programs", json=body, headers=auth(key))
    assert_validation_problem(response, field)


@pytest.mark.parametrize("body, fields", [
    ({"points": -5}, {"points"}),
    ({"points": "ten"}, {"points"}),
    ({"amount": "12.50", "points": 10}, {"amount", "points"}),
    ({}, {"amount", "points"}),
    ({"points": 10, "bonus": True}, {"bonus"}),
])
def test_invalid_earn_is_422_naming_the_field(app, client, body, fields):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    response = earn(client, key, member["id"], **body)
    errors = assert_validation_problem(response)
    assert set(errors) & fields, errors
    assert balance(client, key, member["id"]) == 0


@pytest.mark.parametrize("body, field", [
    ({"name": "Mina Park", "locale": "xx"}, "locale"),
    ({"name": "Mina Park", "email": "not-an-email"}, "email"),
    ({"email": "mina@example.com"}, "name"),
])
def test_invalid_member_is_422_naming_the_field(app, client, body, field):
    _, key = make_merchant(app)
    program = make_program(client, key)
    response = client.post(f"/api/v1/programs/{program['id']}/members", json=body, headers=auth(key))
    assert_validation_problem(response, field)


def test_unknown_member_is_404_problem(app, client):
    _, key = make_merchant(app)
    assert_problem(client.get("/api/v1/members/987654321", headers=auth(key)), 404)


@pytest.mark.parametrize("raw", ['{"name": "Bean There"', "name=Bean", '["a", '])
def test_malformed_json_body_is_a_problem_not_html(app, client, raw):
    _, key = make_merchant(app)
    response = client.post("/api/v1/programs", data=raw, content_type="application/json", headers=auth(key))
    assert response.status_code in (400, 422), response.get_data(as_text=True)
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/no-such-page"])
def test_unknown_route_is_404_problem(client, path):
    assert_problem(client.get(path), 404)


def test_wrong_method_is_405_problem_with_allow(app, client):
    _, key = make_merchant(app)
    response = client.delete("/api/v1/programs", headers=auth(key))
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_redeem_with_too_few_points_is_409_and_writes_nothing(app, client):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"], points=30)
    statement = transactions(client, key, member["id"])
    response = redeem(client, key, member["id"], points=40)
    body = assert_problem(response, 409)
    assert body["detail"]
    assert balance(client, key, member["id"]) == 30
    assert transactions(client, key, member["id"]) == statement


def test_redeem_refused_with_idempotency_key_can_succeed_after_earning(app, client):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"], points=30)
    assert_problem(redeem(client, key, member["id"], idempotency_key="till-7", points=40), 409)
    earn(client, key, member["id"], points=20)
    retried = redeem(client, key, member["id"], idempotency_key="till-7", points=40)
    assert retried.status_code == 201, retried.get_json()
    assert retried.get_json()["member"]["points_balance"] == 10


def test_unexpected_error_is_500_problem_without_a_traceback(test_env):
    app = create_app(load_config(test_env), testing=True)
    try:
        @app.get("/boom")
        def boom():
            raise RuntimeError("secret internals: password=hunter2")

        response = app.test_client().get("/boom")
    finally:
        services(app).engine.dispose()
    assert_problem(response, 500)
    assert "hunter2" not in response.get_data(as_text=True)


def assert_validation_problem(response, field: str | None = None) -> dict:
    body = assert_problem(response, 422)
    assert body["detail"] and isinstance(body["errors"], dict), body
    assert all(isinstance(messages, list) and messages for messages in body["errors"].values()), body
    if field is not None:
        assert field in body["errors"], body["errors"]
    return body["errors"]


def balance(client, key: str, member_id: int) -> int:
    return client.get(f"/api/v1/members/{member_id}", headers=auth(key)).get_json()["points_balance"]


def transactions(client, key: str, member_id: int) -> list[dict]:
    return client.get(f"/api/v1/members/{member_id}/transactions", headers=auth(key)).get_json()["data"]


@pytest.mark.parametrize("colour, stored", [("rgb(16, 32, 48)", "#102030"), ("rgb(255,255,255)", "#FFFFFF"),
                                            ("#a0b1c2", "#a0b1c2")])
def test_colours_accept_apples_rgb_notation_and_hex(app, client, colour, stored):
    _, admin_key = make_merchant(app)
    response = client.post("/api/v1/programs", json={"name": "Colours", "branding": {"label_color": colour}},
                           headers=auth(admin_key))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["branding"]["label_color"] == stored


@pytest.mark.parametrize("colour", ["rgb(256, 0, 0)", "rgb(1, 2)", "#12345", "#1F2937\n", "rgba(1, 2, 3, 0.5)"])
def test_malformed_colour_is_422_naming_the_field(app, client, colour):
    _, admin_key = make_merchant(app)
    response = client.post("/api/v1/programs", json={"name": "Colours", "branding": {"label_color": colour}},
                           headers=auth(admin_key))
    assert "branding.label_color" in assert_problem(response, 422)["errors"]
