"""The production server, `gunicorn wsgi:app` from the project root, keeps answering while clients sit idle."""

import http.client
import os
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.processes import stop

GUNICORN = Path(sys.executable).parent / "gunicorn"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_health(port: int, timeout: float) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def wait_until_serving(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if get_health(port, timeout=1) == 200:
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer /healthz:\n{log.read_text()}")


@pytest.fixture
def gunicorn_port(test_env, tmp_path):
    """The real gunicorn with the project's gunicorn.conf.py, on a free loopback port; always stopped after."""
    port, log = free_port(), tmp_path / "gunicorn.log"
    env = {**os.environ, **test_env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(WORKERS)}
    with log.open("w") as output:
        process = subprocess.Popen([str(GUNICORN), "wsgi:app"], cwd=PROJECT_ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(process, port, log)
        yield port
    finally:
        stop(process)


def test_health_answers_within_a_second_while_idle_connections_are_open(gunicorn_port):
    with ExitStack() as idle:
        for _ in range(WORKERS + 4):  # with sync workers, each would hold a whole worker
            idle.enter_context(socket.create_connection(("127.0.0.1", gunicorn_port)))
        time.sleep(0.2)  # let the workers accept them

        assert get_health(gunicorn_port, timeout=1) == 200
