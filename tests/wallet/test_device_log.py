"""`POST /wallet/v1/log` needs no login (Apple's devices send none), so what it accepts is bounded and cannot
forge log lines."""

import logging

import pytest
from sqlalchemy import func, select

from app import create_app
from app.config import load_config
from app.models import DeviceLog
from app.services import services

FORGED = "update failed\n2030-01-01 00:00:00 ERROR app: admin key leaked\r\x1b[2K\u2028\x00 \\n done"


def stored_messages(app, like: str) -> list[str]:
    with app.app_context(), services(app).sessions() as session:
        return list(session.scalars(select(DeviceLog.message).where(DeviceLog.message.like(like))
                                    .order_by(DeviceLog.id)))


def test_a_device_line_never_becomes_two_log_lines(app, client, caplog):
    caplog.set_level(logging.WARNING, logger="app.domain.devices")

    assert client.post("/wallet/v1/log", json={"logs": ["forged-1 " + FORGED]}).status_code == 200

    messages = [record.getMessage() for record in caplog.records if "forged-1" in record.getMessage()]
    assert len(messages) == 1
    assert not any(char in messages[0] for char in "\n\r\x1b\u2028\x00")
    assert "update failed\\n2030-01-01" in messages[0] and "\\x1b" in messages[0] and "\\\\n done" in messages[0]


def test_device_lines_are_stored_escaped(app, client):
    assert client.post("/wallet/v1/log", json={"logs": ["forged-2 " + FORGED]}).status_code == 200

    [stored] = stored_messages(app, "forged-2 %")
    assert "\n" not in stored and "\x00" not in stored and "\\x00" in stored


@pytest.fixture
def small_log_app(private_env):
    app = create_app(load_config({**private_env, "DEVICE_LOG_MAX_LINES": "5"}), testing=True)
    yield app
    services(app).engine.dispose()


def test_only_the_newest_device_lines_are_kept(small_log_app):
    client = small_log_app.test_client()
    client.post("/wallet/v1/log", json={"logs": ["old-1", "old-2", "old-3"]})

    client.post("/wallet/v1/log", json={"logs": ["new-1", "new-2", "new-3", "new-4"]})

    assert stored_messages(small_log_app, "%") == ["old-3", "new-1", "new-2", "new-3", "new-4"]


def test_a_flood_of_lines_leaves_at_most_the_cap_stored(small_log_app):
    client = small_log_app.test_client()
    client.post("/wallet/v1/log", json={"logs": [f"line-{n}" for n in range(500)]})
    with small_log_app.app_context(), services(small_log_app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeviceLog)) == 5
