"""`/metrics`: Prometheus text from loopback, a bearer token from anywhere else, and under gunicorn the sum of
every worker's samples."""

from __future__ import annotations

import http.client
import os
import subprocess
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.config import ConfigError, load_config
from app.services import services
from tests.app.test_gunicorn import GUNICORN, PROJECT_ROOT, free_port, wait_until_serving
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program, redeem
from tests.processes import stop
from tests.workers.test_wallet_push import Device
from workers.apns import _log_results
from workers.apns_results import PushResult

TOKEN = "metrics-token-for-tests-0123456789"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}


@pytest.fixture(scope="module")
def metrics_app(test_env):
    app = create_app(load_config({**test_env, "METRICS_TOKEN": TOKEN}), testing=True)
    yield app
    services(app).engine.dispose()


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} of a scrape."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def test_metrics_from_loopback_count_earns_redeems_and_time_requests(metrics_app):
    client = metrics_app.test_client()
    _, key = make_merchant(metrics_app)
    member = make_member(client, key, make_program(client, key)["id"])
    device = Device(client, client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data)
    assert device.register().status_code == 201  # a card on a device: its earns queue pushes
    before = scrape(client)

    assert earn(client, key, member["id"], idempotency_key="order-1", points=40).status_code == 201
    assert earn(client, key, member["id"], idempotency_key="order-1", points=40).status_code == 201  # a replay
    assert redeem(client, key, member["id"], points=15).status_code == 201
    after = scrape(client)

    def grew(name, labels=()):
        return after.get((name, labels), 0) - before.get((name, labels), 0)
    assert grew("punchpass_earns_total") == 1 and grew("punchpass_earned_points_total") == 40
    assert grew("punchpass_redeems_total") == 1 and grew("punchpass_redeemed_points_total") == 15
    earn_labels = (("endpoint", "members.earn"), ("method", "POST"), ("status", "2xx"))
    assert grew("punchpass_request_duration_seconds_count", earn_labels) == 2
    assert ("punchpass_request_duration_seconds_bucket", tuple(sorted((*earn_labels, ("le", "+Inf"))))) in after
    assert after[("punchpass_database_up", ())] == 1
    assert after[("punchpass_outbox_pending", ())] >= 1  # no worker in tests: the earns' pushes wait
    assert after[("punchpass_outbox_oldest_pending_age_seconds", ())] >= 0


def test_a_refused_earn_is_not_counted(metrics_app):
    client = metrics_app.test_client()
    _, key = make_merchant(metrics_app)
    member = make_member(client, key, make_program(client, key)["id"])
    before = scrape(client)
    assert redeem(client, key, member["id"], points=15).status_code == 409
    after = scrape(client)
    assert after[("punchpass_redeems_total", ())] == before[("punchpass_redeems_total", ())]


def test_metrics_from_outside_need_the_token(metrics_app):
    client = metrics_app.test_client()
    refused = client.get("/metrics", environ_base=OUTSIDE)
    assert_problem(refused, 401)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert_problem(wrong, 401)
    allowed = client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200 and b"punchpass_request_duration_seconds" in allowed.data


def test_metrics_are_not_found_from_outside_without_a_token(app):
    assert_problem(app.test_client().get("/metrics", environ_base=OUTSIDE), 404)
    assert app.test_client().get("/metrics").status_code == 200  # loopback needs no token


def test_a_forwarded_outside_client_is_not_loopback(test_env):
    app = create_app(load_config({**test_env, "METRICS_TOKEN": TOKEN, "TRUSTED_PROXIES": "1"}), testing=True)
    try:
        client = app.test_client()  # the peer is the proxy on 127.0.0.1
        assert_problem(client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"}), 401)
        assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    finally:
        services(app).engine.dispose()


def test_without_trusted_proxies_a_claimed_loopback_address_is_ignored(metrics_app):
    response = metrics_app.test_client().get("/metrics", environ_base=OUTSIDE, headers={"X-Forwarded-For": "::1"})
    assert_problem(response, 401)


def test_push_outcomes_are_counted(metrics_app):
    before = scrape(metrics_app.test_client())
    _log_results([PushResult("a" * 64, 200), PushResult("b" * 64, 410, "Unregistered"),
                  PushResult("c" * 64, 200)], "pass.test", 0.01)
    after = scrape(metrics_app.test_client())

    def grew(outcome):
        key = ("punchpass_apns_pushes_total", (("outcome", outcome),))
        return after.get(key, 0) - before.get(key, 0)
    assert grew("ok") == 2 and grew("unregistered") == 1


@pytest.mark.parametrize("name, value", [("METRICS_TOKEN", "short"), ("METRICS_TOKEN", "has a space in it 12345"),
                                         ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/punchpass-metrics")])
def test_bad_metrics_settings_are_named(test_env, name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({**test_env, name: value})


def test_gunicorn_workers_add_up_in_one_scrape(test_env, tmp_path):
    """Two workers write to PROMETHEUS_MULTIPROC_DIR; whichever answers the scrape reports every request."""
    port, log, metrics_dir = free_port(), tmp_path / "gunicorn.log", tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {**os.environ, **test_env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with log.open("w") as output:
        process = subprocess.Popen([str(GUNICORN), "wsgi:app"], cwd=PROJECT_ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(process, port, log)
        path = f"/healthz?{uuid.uuid4().hex}"
        for _ in range(30):  # new connections: the master's socket spreads them over both workers
            assert get(port, path)[0] == 200
        status, text = get(port, "/metrics")
        assert status == 200, text
        counts = [value for (name, labels), value in samples(text).items()
                  if name == "punchpass_request_duration_seconds_count" and ("endpoint", "pages.health") in labels]
        assert sum(counts) >= 30, text
        histogram_files = sorted(metrics_dir.glob("histogram_*.db"))
        assert histogram_files, list(metrics_dir.iterdir())
    finally:
        stop(process)


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_gunicorn_makes_a_samples_directory_and_removes_it_on_exit(test_env, tmp_path):
    port, log, temp = free_port(), tmp_path / "gunicorn.log", tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, **test_env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1",
           "TMPDIR": str(temp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("w") as output:
        process = subprocess.Popen([str(GUNICORN), "wsgi:app"], cwd=PROJECT_ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(process, port, log)
        assert get(port, "/metrics")[0] == 200
        [made] = temp.glob("punchpass-metrics-*")
        assert list(made.glob("histogram_*.db"))
    finally:
        stop(process)
    assert not list(temp.iterdir())


def test_gunicorn_refusing_to_start_leaves_no_samples_directory(test_env, tmp_path):
    env = {**os.environ, **test_env, "TMPDIR": str(tmp_path), "METRICS_TOKEN": "short"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run([str(GUNICORN), "wsgi:app"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "METRICS_TOKEN" in result.stderr
    assert not list(tmp_path.iterdir())
