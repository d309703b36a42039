"""The card link's token and database parameters (tokens, push tokens) stay out of logs: access logs of the dev
server and of gunicorn, and database error messages."""

import os
import secrets
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

import pytest
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.config import load_config
from app.db import make_engine, make_session_factory
from app.models import DeviceRegistration
from app.services import services
from tests.app.test_gunicorn import GUNICORN, PROJECT_ROOT, free_port
from tests.factories import make_member, make_merchant, make_program
from tests.processes import stop

PUNCHPASS = os.path.join(os.path.dirname(sys.executable), "punchpass")


@pytest.fixture
def card_path(app, client) -> str:
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    return member["apple_pass_url"].replace("https://punchpass.test", "")


def get_until_served(port: int, path: str, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            time.sleep(0.2)
    pytest.fail("the server did not answer")


def run_and_read_log(command: list[str], env: dict, port: int, paths: list[str], tmp_path) -> str:
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        statuses = [get_until_served(port, path, process) for path in paths]
    finally:
        stop(process)
    assert statuses[0] == 200, log.read_text()
    return log.read_text()


def assert_masked(text: str, path: str) -> None:
    token = path.removeprefix("/cards/").removesuffix(".pkpass")
    assert token not in text
    assert f"/cards/{token[:4]}***.pkpass" in text, text


def test_dev_server_access_log_masks_the_card_link(test_env, card_path, tmp_path):
    port = free_port()
    env = {**os.environ, **test_env, "HOST": "127.0.0.1", "PORT": str(port)}

    text = run_and_read_log([PUNCHPASS, "serve", "--no-embedded-worker"], env, port, [card_path], tmp_path)

    assert_masked(text, card_path)


def test_gunicorn_access_log_masks_the_card_link_and_authorization(test_env, card_path, tmp_path):
    port = free_port()
    env = {**os.environ, **test_env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    log_format = '%(h)s "%(r)s" %(s)s %(U)s %({authorization}i)s'
    command = [str(GUNICORN), "wsgi:app", "--access-logfile", "-", "--access-logformat", log_format]

    text = run_and_read_log(command, env, port, [card_path], tmp_path)

    assert_masked(text, card_path)
    assert text.count("/cards/") >= 2  # the request line and the path atom


def test_database_errors_do_not_show_bound_parameters(database_url):
    push_token = "f00d" + secrets.token_hex(30)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session, pytest.raises(IntegrityError) as raised:
            session.add(DeviceRegistration(device_library_id="dev", push_token=push_token, member_id=2**40))
            session.commit()
    finally:
        engine.dispose()
    shown = str(raised.value) + "".join(traceback.format_exception(raised.value))
    assert push_token not in shown
    assert "hidden" in shown


def test_only_test_apps_keep_database_parameters(test_env):
    production, testing = create_app(load_config(test_env)), create_app(load_config(test_env), testing=True)
    try:
        assert services(production).engine.hide_parameters and not services(testing).engine.hide_parameters
    finally:
        services(production).engine.dispose()
        services(testing).engine.dispose()
