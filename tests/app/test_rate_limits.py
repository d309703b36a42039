"""Abuse controls: per API key, per address on failed logins and public endpoints; 429 always says when to retry."""

import os
import uuid

import pytest

from app import create_app
from app.config import ConfigError, load_config
from app.services import services
from tests.factories import auth, make_api_key, make_member, make_merchant, make_program


@pytest.fixture
def limited_app(test_env):
    """make(**settings): a fresh app (its own counters) with these settings on top of test_env."""
    apps = []

    def make(**settings):
        app = create_app(load_config({**test_env, **settings}), testing=True)
        apps.append(app)
        return app

    yield make
    for app in apps:
        services(app).engine.dispose()


def from_address(address: str) -> dict:
    return {"REMOTE_ADDR": address}


def test_merchant_api_answers_problem_429_with_retry_after_per_api_key(limited_app):
    app = limited_app(RATE_LIMIT_API_KEY="3/minute")
    client = app.test_client()
    merchant_id, key = make_merchant(app)
    other_key = make_api_key(app, merchant_id, "admin")
    for _ in range(3):
        assert client.get("/api/v1/programs/999999", headers=auth(key)).status_code == 404

    limited = client.get("/api/v1/programs/999999", headers=auth(key))

    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json" and limited.get_json()["status"] == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert client.get("/api/v1/programs/999999", headers=auth(other_key)).status_code == 404


def test_failed_authentication_is_limited_per_client_address(limited_app):
    app = limited_app(RATE_LIMIT_FAILED_AUTH="3/minute")
    client = app.test_client()
    _, key = make_merchant(app)
    for _ in range(3):
        response = client.get("/api/v1/programs/1", headers=auth(f"pp_admin_{uuid.uuid4().hex}"),
                              environ_base=from_address("203.0.113.7"))
        assert response.status_code == 401

    attacker = from_address("203.0.113.7")
    guessing = client.get("/api/v1/programs/1", headers=auth("pp_admin_guess"), environ_base=attacker)
    elsewhere = client.get("/api/v1/programs/999999", headers=auth(key), environ_base=from_address("203.0.113.8"))

    assert guessing.status_code == 429 and int(guessing.headers["Retry-After"]) >= 1
    assert guessing.mimetype == "application/problem+json"
    assert elsewhere.status_code == 404


def test_successful_requests_do_not_count_as_failed_authentication(limited_app):
    app = limited_app(RATE_LIMIT_FAILED_AUTH="2/minute")
    client = app.test_client()
    _, key = make_merchant(app)
    for _ in range(5):
        assert client.get("/api/v1/programs/999999", headers=auth(key)).status_code == 404


def test_card_link_is_limited_per_client_address(limited_app):
    app = limited_app(RATE_LIMIT_PUBLIC="2/minute")
    client = app.test_client()
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    path = member["apple_pass_url"].replace("https://punchpass.test", "")
    for _ in range(2):
        assert client.get(path, environ_base=from_address("198.51.100.1")).status_code == 200

    limited = client.get(path, environ_base=from_address("198.51.100.1"))

    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert client.get(path, environ_base=from_address("198.51.100.2")).status_code == 200
    assert client.get("/healthz", environ_base=from_address("198.51.100.1")).status_code == 200


def test_apple_web_service_answers_a_plain_429_with_retry_after(limited_app):
    app = limited_app(RATE_LIMIT_PUBLIC="2/minute")
    client = app.test_client()
    path = "/wallet/v1/devices/abc/registrations/pass.test.punchpass"
    for _ in range(2):
        assert client.get(path).status_code == 204

    limited = client.get(path)

    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.mimetype == "text/plain" and limited.data == b""


def test_device_log_is_limited_per_client_address(limited_app):
    app = limited_app(RATE_LIMIT_DEVICE_LOG="2/minute")
    client = app.test_client()
    for _ in range(2):
        assert client.post("/wallet/v1/log", json={"logs": ["x"]}).status_code == 200

    limited = client.post("/wallet/v1/log", json={"logs": ["x"]})

    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert client.get("/wallet/v1/devices/abc/registrations/pass.test.punchpass").status_code == 204
    neighbour = from_address("192.0.2.9")
    assert client.post("/wallet/v1/log", json={"logs": ["x"]}, environ_base=neighbour).status_code == 200


def test_forwarded_for_is_ignored_without_trusted_proxies(limited_app):
    app = limited_app(RATE_LIMIT_DEVICE_LOG="1/minute")
    client = app.test_client()
    assert client.post("/wallet/v1/log", json={"logs": []}, headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 200

    spoofed = client.post("/wallet/v1/log", json={"logs": []}, headers={"X-Forwarded-For": "192.0.2.2"})

    assert spoofed.status_code == 429


def test_trusted_proxies_make_the_forwarded_client_the_address(limited_app):
    app = limited_app(RATE_LIMIT_DEVICE_LOG="1/minute", TRUSTED_PROXIES="1")
    client = app.test_client()
    first = {"X-Forwarded-For": "192.0.2.1"}
    assert client.post("/wallet/v1/log", json={"logs": []}, headers=first).status_code == 200
    assert client.post("/wallet/v1/log", json={"logs": []}, headers=first).status_code == 429
    # One trusted hop: the proxy's own address is what it appended, whatever the client claimed before it.
    other = {"X-Forwarded-For": "192.0.2.1, 192.0.2.2"}
    assert client.post("/wallet/v1/log", json={"logs": []}, headers=other).status_code == 200


@pytest.mark.skipif(not os.environ.get("PUNCHPASS_TEST_REDIS_URL"), reason="needs PUNCHPASS_TEST_REDIS_URL")
def test_processes_share_the_limits_through_redis(limited_app):
    settings = {"REDIS_URL": os.environ["PUNCHPASS_TEST_REDIS_URL"], "RATE_LIMIT_DEVICE_LOG": "3/minute"}
    first, second = limited_app(**settings).test_client(), limited_app(**settings).test_client()
    address = from_address(f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}")
    statuses = [client.post("/wallet/v1/log", json={"logs": []}, environ_base=address).status_code
                for client in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.skipif(not os.environ.get("PUNCHPASS_TEST_REDIS_URL"), reason="needs PUNCHPASS_TEST_REDIS_URL")
def test_processes_share_failed_authentications_through_redis(limited_app):
    settings = {"REDIS_URL": os.environ["PUNCHPASS_TEST_REDIS_URL"], "RATE_LIMIT_FAILED_AUTH": "3/minute"}
    first, second = limited_app(**settings), limited_app(**settings)
    _, key = make_merchant(first)
    address = from_address(f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}")
    statuses = [app.test_client().get("/api/v1/programs/999999", headers=auth(f"pp_admin_{uuid.uuid4().hex}"),
                                      environ_base=address).status_code
                for app in (first, second, first, second)]
    with_the_right_key = second.test_client().get("/api/v1/programs/999999", headers=auth(key), environ_base=address)

    assert statuses == [401, 401, 401, 429]
    assert with_the_right_key.status_code == 429  # the address is refused for the window, whatever it presents


@pytest.mark.parametrize("name", ["RATE_LIMIT_API_KEY", "RATE_LIMIT_PUBLIC", "RATE_LIMIT_FAILED_AUTH",
                                  "RATE_LIMIT_DEVICE_LOG"])
@pytest.mark.parametrize("value", ["fifty", "50/fortnight", "0/second"])
def test_bad_rate_limit_notation_is_named(test_env, name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({**test_env, name: value})


def test_rate_limit_defaults_leave_a_busy_till_alone(test_env):
    env = {name: value for name, value in test_env.items() if not name.startswith("RATE_LIMIT_")}
    limits = load_config(env).rate_limits
    assert (limits.api_key, limits.public) == ("100/second", "20/second")
