"""`punchpass doctor` and start-up say when an Apple certificate is about to expire, and keep secrets out."""

import logging

import pytest
from click.testing import CliRunner

from app import create_app
from app.cli import cli
from app.config import load_config
from app.services import services
from passes import make_test_chain
from tests.factories import TEST_PASS_TYPE_ID, TEST_TEAM_ID


@pytest.fixture
def expiring_env(test_env, tmp_path) -> dict:
    chain = make_test_chain(tmp_path, pass_type_id=TEST_PASS_TYPE_ID, team_id=TEST_TEAM_ID, days=20)
    return {**test_env, "APPLE_PASS_CERT": str(chain["pass_cert"]), "APPLE_PASS_KEY": str(chain["pass_key"]),
            "APPLE_WWDR_CERT": str(chain["wwdr"])}


def doctor(env: dict) -> str:
    result = CliRunner().invoke(cli, ["doctor"], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_doctor_reports_settings_certificates_and_outbox_without_secrets(test_env):
    env = {**test_env, "REDIS_URL": "redis://:hunter2-redis@127.0.0.1:6379/8", "APPLE_PASS_KEY_PASSWORD": ""}

    report = doctor(env)

    assert "PUBLIC_BASE_URL" in report and "https://punchpass.test" in report and "RATE_LIMIT_PUBLIC" in report
    assert "pass certificate" in report and "WWDR certificate" in report and " days)" in report
    assert "waiting" in report and "leased" in report and "dead" in report
    assert "hunter2-redis" not in report and test_env["SECRET_KEY"] not in report
    assert "WARNING" not in report  # the test chain has years left


def test_doctor_warns_from_30_days_before_a_certificate_expires(expiring_env):
    warnings = [line for line in doctor(expiring_env).splitlines() if line.startswith("WARNING")]
    assert any("APPLE_PASS_CERT" in line and "day(s)" in line for line in warnings), warnings


def test_start_up_logs_a_warning_for_an_expiring_certificate(expiring_env, caplog):
    caplog.set_level(logging.WARNING, logger="app.health")
    app = create_app(load_config(expiring_env), testing=True)
    services(app).engine.dispose()
    assert any("APPLE_PASS_CERT" in record.getMessage() and record.levelno == logging.WARNING
               for record in caplog.records)
