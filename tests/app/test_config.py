"""A bad setting stops start-up with one line naming it, before any pass is issued."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigError, load_config
from app.services import services
from passes import make_test_chain
from tests.factories import TEST_PASS_TYPE_ID, TEST_TEAM_ID

PUNCHPASS = Path(sys.executable).parent / "punchpass"


@pytest.mark.parametrize("name, value", [
    ("PORT", "eighty"), ("PORT", "70000"), ("PUBLIC_BASE_URL", "not a url"), ("DATABASE_URL", "punchpass.db"),
    ("REDIS_URL", "localhost:6379"), ("APNS_BASE_URL", "ftp://apns"), ("APPLE_PASS_CERT", "/nonexistent/pass.pem"),
    ("APNS_CA_FILE", "/nonexistent/ca.pem"), ("APPLE_PERSONALIZATION", "maybe"),
    ("TRUSTED_PROXIES", "-1"), ("TRUSTED_PROXIES", "two"), ("MAX_DEVICES_PER_PASS", "0"),
    ("RETENTION_DAYS_IDEMPOTENCY", "a week"), ("RETENTION_DAYS_OUTBOX", "0"), ("RETENTION_DAYS_DEVICE_LOGS", "-3"),
    ("DEVICE_LOG_MAX_LINES", "many"),
])
def test_malformed_setting_is_named(test_env, name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({**test_env, name: value})


def test_a_key_without_its_certificate_is_named(test_env):
    env = {k: v for k, v in test_env.items() if k != "APPLE_PASS_CERT"}
    with pytest.raises(ConfigError, match="APPLE_PASS_CERT"):
        load_config(env)


def test_certificate_for_another_pass_type_stops_start_up(test_env):
    with pytest.raises(ConfigError, match="pass.other.example"):
        create_app(load_config({**test_env, "APPLE_PASS_TYPE_ID": "pass.other.example"}))


def test_certificate_for_another_team_stops_start_up(test_env):
    with pytest.raises(ConfigError, match="OTHERTEAM1"):
        create_app(load_config({**test_env, "APPLE_TEAM_ID": "OTHERTEAM1"}))


def test_expired_certificate_stops_start_up(test_env, tmp_path):
    chain = make_test_chain(tmp_path, pass_type_id=TEST_PASS_TYPE_ID, team_id=TEST_TEAM_ID, days=-1)
    with pytest.raises(ConfigError, match="expired"):
        create_app(load_config({**test_env, "APPLE_PASS_CERT": str(chain["pass_cert"]),
                                "APPLE_PASS_KEY": str(chain["pass_key"]), "APPLE_WWDR_CERT": str(chain["wwdr"])}))


def test_key_of_another_certificate_stops_start_up(test_env, tmp_path):
    other = make_test_chain(tmp_path, pass_type_id=TEST_PASS_TYPE_ID, team_id=TEST_TEAM_ID)
    with pytest.raises(ConfigError, match="APPLE_PASS_KEY"):
        create_app(load_config({**test_env, "APPLE_PASS_KEY": str(other["pass_key"])}))


def test_without_apple_settings_development_uses_a_generated_chain(private_env, tmp_path):
    env = {k: v for k, v in private_env.items() if not k.startswith("APPLE_")}
    config = load_config({**env, "PUNCHPASS_INSTANCE": str(tmp_path)})
    app = create_app(config)
    assert config.apple.dev_chain and config.apple.pass_cert.is_file()
    assert services(app).signer.pass_type_id == "pass.dev.punchpass"
    services(app).engine.dispose()


def test_command_line_prints_one_line_naming_the_setting_and_exits_2(test_env):
    env = {**os.environ, **test_env, "APPLE_PASS_TYPE_ID": "pass.wrong.example"}
    result = subprocess.run([str(PUNCHPASS), "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pass.wrong.example" in lines[0] and "Traceback" not in result.stderr


def test_private_key_password_is_not_in_the_config_repr(test_env):
    config = load_config({**test_env, "APPLE_PASS_KEY_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(config)


@pytest.mark.parametrize("url", ["http://loyalty.example.com", "http://192.168.1.20:5000"])
def test_http_web_service_on_a_public_host_stops_start_up(test_env, url):
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load_config({**test_env, "PUBLIC_BASE_URL": url})


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000", "http://localhost:8000", "http://[::1]:5000",
                                 "http://127.0.0.2", "https://loyalty.example.com"])
def test_https_or_loopback_web_service_starts(test_env, url):
    assert load_config({**test_env, "PUBLIC_BASE_URL": url}).web_service_url == url + "/wallet"


def test_http_on_a_lan_host_starts_when_explicitly_allowed(test_env):
    env = {**test_env, "PUBLIC_BASE_URL": "http://192.168.1.20:5000", "APPLE_ALLOW_HTTP_WEB_SERVICE": "on"}
    assert load_config(env).public_base_url == "http://192.168.1.20:5000"


def test_gunicorn_prints_one_line_naming_public_base_url_and_does_not_start(test_env):
    project_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **test_env, "PUBLIC_BASE_URL": "http://loyalty.example.com"}
    result = subprocess.run([str(PUNCHPASS.parent / "gunicorn"), "wsgi:app"], cwd=project_root, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("punchpass:")]
    assert len(ours) == 1 and "PUBLIC_BASE_URL" in ours[0], result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr


@pytest.mark.parametrize("secret", [None, "", "dev-not-secret"])
def test_a_public_address_without_a_real_secret_key_stops_start_up(test_env, secret):
    env = {name: value for name, value in test_env.items() if name != "SECRET_KEY"}
    if secret is not None:
        env["SECRET_KEY"] = secret
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(env)


def test_loopback_development_starts_without_a_secret_key(test_env):
    env = {name: value for name, value in test_env.items() if name != "SECRET_KEY"}
    assert load_config({**env, "PUBLIC_BASE_URL": "http://127.0.0.1:5000"}).secret_key == ""


def test_serve_without_secret_key_on_a_public_address_exits_2_naming_it(test_env):
    env = {**{k: v for k, v in os.environ.items() if k != "SECRET_KEY"},
           **{k: v for k, v in test_env.items() if k != "SECRET_KEY"}}
    result = subprocess.run([str(PUNCHPASS), "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "SECRET_KEY" in result.stderr and "Traceback" not in result.stderr
