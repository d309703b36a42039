"""API keys are remembered per process, and a revocation still reaches every process at once (app/api_key_cache.py)."""

import json
import os
import threading

import pytest
from click.testing import CliRunner
from redis import Redis
from sqlalchemy import event

from app import create_app
from app.api_key_cache import GENERATION_KEY, ApiKeyCache
from app.cli import cli
from app.config import load_config
from app.services import services
from tests.factories import auth, make_merchant

REDIS_URL = os.environ.get("PUNCHPASS_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs PUNCHPASS_TEST_REDIS_URL")
PATH = "/api/v1/programs/999999"  # any authenticated request: 404 with a good key, 401 without


@pytest.fixture
def two_processes(test_env):
    """Two app instances with Redis on one database, as two gunicorn workers (or two hosts) are."""
    env = {**test_env, "REDIS_URL": REDIS_URL}
    apps = [create_app(load_config(env), testing=True) for _ in range(2)]
    yield env, apps
    for app in apps:
        services(app).engine.dispose()


def key_lookups(app, client, key: str) -> int:
    """How many api_keys statements one request of this thread sends."""
    thread, seen = threading.get_ident(), []

    def record(_conn, _cursor, statement, *_):
        if threading.get_ident() == thread and "FROM api_keys" in statement:
            seen.append(statement)
    event.listen(services(app).engine, "before_cursor_execute", record)
    try:
        assert client.get(PATH, headers=auth(key)).status_code == 404
    finally:
        event.remove(services(app).engine, "before_cursor_execute", record)
    return len(seen)


def admin_key(env: dict, app) -> dict:
    merchant_id, _ = make_merchant(app)
    result = CliRunner().invoke(cli, ["create-api-key", "--merchant", str(merchant_id), "--scope", "admin"], env=env)
    return json.loads(result.output)


def test_a_known_key_is_not_looked_up_in_the_database_again(two_processes):
    env, (app, _) = two_processes
    key, client = admin_key(env, app)["api_key"], app.test_client()

    assert [key_lookups(app, client, key) for _ in range(3)] == [1, 0, 0]


def test_a_revoked_cached_key_is_refused_at_once_by_every_process(two_processes):
    env, apps = two_processes
    created, clients = admin_key(env, apps[0]), [app.test_client() for app in apps]
    for _ in range(2):
        assert [c.get(PATH, headers=auth(created["api_key"])).status_code for c in clients] == [404, 404]

    result = CliRunner().invoke(cli, ["revoke-api-key", "--id", str(created["id"])], env=env)

    assert result.exit_code == 0, result.output
    assert [c.get(PATH, headers=auth(created["api_key"])).status_code for c in clients] == [401, 401]


def test_a_revocation_redis_did_not_hear_of_fails_the_command_and_can_be_run_again(two_processes):
    env, apps = two_processes
    created = admin_key(env, apps[0])
    client = apps[0].test_client()
    assert client.get(PATH, headers=auth(created["api_key"])).status_code == 404

    unheard = CliRunner().invoke(cli, ["revoke-api-key", "--id", str(created["id"])],
                                 env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert unheard.exit_code == 1 and "Run the revocation again" in unheard.output

    again = CliRunner().invoke(cli, ["revoke-api-key", "--id", str(created["id"])], env=env)
    assert again.exit_code == 0, again.output
    assert client.get(PATH, headers=auth(created["api_key"])).status_code == 401


def test_a_redis_that_restarted_empty_makes_every_remembered_key_stale():
    cache, loads = ApiKeyCache(REDIS_URL), []

    def request() -> str:
        generation, _, _ = cache.generation_and_counts()
        return cache.get("k", lambda: loads.append(1) or "caller", generation)
    request(), request()
    assert len(loads) == 1

    Redis.from_url(REDIS_URL).delete(GENERATION_KEY)

    assert request() == "caller" and len(loads) == 2


def test_without_an_answering_redis_every_request_asks_the_database():
    cache, loads = ApiKeyCache("redis://127.0.0.1:1/0"), []
    assert cache.generation_and_counts() is None
    for _ in range(3):
        assert cache.get("k", lambda: loads.append(1) or "caller", None) == "caller"
    assert len(loads) == 3


def test_the_per_key_limit_is_counted_in_the_same_round_trip_and_says_when_to_retry(two_processes):
    env, (app, other) = two_processes
    limited = create_app(load_config({**env, "RATE_LIMIT_API_KEY": "2/minute"}), testing=True)
    try:
        key, client = admin_key(env, app)["api_key"], limited.test_client()
        statuses = [client.get(PATH, headers=auth(key)).status_code for _ in range(3)]
        assert statuses == [404, 404, 429]
        assert 1 <= int(client.get(PATH, headers=auth(key)).headers["Retry-After"]) <= 60
    finally:
        services(limited).engine.dispose()
