"""`punchpass jobs run-due --as-of` runs the loyalty engine's sweeps: points expire, pending points are released,
tiers are reviewed, all as of the instant named, and a second run changes nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from click.testing import CliRunner

from app import create_app
from app.cli import cli
from app.config import load_config
from app.services import services
from tests.factories import auth, earn, make_member, make_merchant, make_program

DAY0 = datetime(2026, 1, 31, 12, tzinfo=timezone.utc)


@pytest.fixture
def engine_app(private_env):
    app = create_app(load_config(private_env), testing=True)
    yield app
    services(app).engine.dispose()


def test_run_due_expires_releases_and_reviews_as_of_the_instant(engine_app, private_env):
    client = engine_app.test_client()
    _, key = make_merchant(engine_app)
    program = make_program(client, key, expiry={"policy": "end_of_month"}, pending_days=2,
                           tiers=[{"name": "Bronze", "threshold": 0}, {"name": "Gold", "threshold": 100}],
                           tier_rules={"window_months": 1, "grace_days": 0})
    member = make_member(client, key, program["id"])
    with time_machine.travel(DAY0, tick=False):
        assert earn(client, key, member["id"], points=150).get_json()["member"]["tier"] == "Gold"

    def run_due(as_of: datetime) -> dict:
        result = CliRunner().invoke(cli, ["jobs", "run-due", "--as-of", as_of.isoformat()], env=private_env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    released = run_due(DAY0 + timedelta(days=2))
    assert released["release_pending_points"] == {"members": 1, "points": 150}
    body = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert (body["points_balance"], body["expiring"]["expires_at"]) == (150, "2026-02-01T00:00:00+00:00")

    run_due(datetime(2026, 2, 1, tzinfo=timezone.utc))  # expired at the end of January
    run_due(datetime(2026, 2, 28, 12, tzinfo=timezone.utc))  # reviewed a month after 31 Jan: still in the window
    body = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert (body["points_balance"], body["tier"], body["tier_review_at"]) == (0, "Gold", "2026-03-31T12:00:00+00:00")
    run_due(datetime(2026, 3, 31, 12, tzinfo=timezone.utc))  # a month with no earn: down to what it reaches
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["tier"] == "Bronze"
    again = run_due(datetime(2026, 3, 31, 12, tzinfo=timezone.utc))
    assert again.get("expire_points", {"points": 0})["points"] == 0
