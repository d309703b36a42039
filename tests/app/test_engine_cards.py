"""The card shows the engine's state: points about to expire, pending points, the running promotion (which
starts and ends by itself) and the tier's benefits, in the member's language."""

import io
import json
import zipfile
from datetime import datetime, timedelta, timezone

import time_machine

from app.domain import sweeps
from app.models import Program
from app.services import db_session
from passes.strings import points_notice
from tests.factories import auth, earn, make_member, make_merchant, make_program

DAY0 = datetime(2026, 6, 10, 3, tzinfo=timezone.utc)


def _back(client, member) -> dict:
    response = client.get(member["apple_pass_url"].replace("https://punchpass.test", ""))
    pass_json = json.loads(zipfile.ZipFile(io.BytesIO(response.data)).read("pass.json"))
    return {field["key"]: field["value"] for field in pass_json["storeCard"]["backFields"]}


def test_expiring_and_pending_points_read_as_sentences_in_the_members_language(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, timezone="Asia/Tokyo", expiry={"policy": "end_of_month"}, pending_days=3)
    english = make_member(client, key, program["id"])
    japanese = make_member(client, key, program["id"], locale="ja")
    with time_machine.travel(DAY0, tick=False):
        for member in (english, japanese):
            earn(client, key, member["id"], points=300)
        with app.app_context():
            session = db_session()
            sweeps.release_pending_points(session, DAY0 + timedelta(days=3))
            session.commit()
        for member in (english, japanese):
            earn(client, key, member["id"], points=120)
        assert _back(client, english)["expiring"] == "300 points expire on 30 Jun"
        assert _back(client, english)["pending"] == "120 pending until 13 Jun"
        assert _back(client, japanese)["expiring"] == "6月30日に300ポイントが失効します"


def test_notices_exist_in_every_language():
    for locale in ("en", "ja", "ko"):
        assert "1,200" in points_notice("expiring", locale, 1200, datetime(2026, 6, 30).date())


def test_a_promotion_shows_while_it_runs_and_goes_by_itself(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, promotions=[{"name": "Double days", "multiplier": "2",
                                                     "starts_at": "2031-05-01T00:00:00Z",
                                                     "ends_at": "2031-05-03T00:00:00Z"}])
    member = make_member(client, key, program["id"])
    assert "promotion" not in _back(client, member)
    versions = []
    for day in (1, 2, 3):
        with app.app_context():
            session = db_session()
            sweeps.show_promotions(session, datetime(2031, 5, day, tzinfo=timezone.utc))
            session.commit()
            versions.append(session.get(Program, program["id"]).design_version)
        if day == 1:
            assert _back(client, member)["promotion"] == "Double days x2"
    assert "promotion" not in _back(client, member)
    assert versions[1] == versions[0] and versions[2] == versions[0] + 1  # a design change when it starts, ends


def test_the_tier_benefits_are_on_the_card(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, tiers=[{"name": "Bronze", "threshold": 0},
                                               {"name": "Gold", "threshold": 100, "perks": "Free oat milk",
                                                "multiplier": "1.5"}])
    member = make_member(client, key, program["id"], points=100)
    assert _back(client, member)["perks"] == "×1.5 · Free oat milk"
    assert client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()["tier"] == "Gold"
