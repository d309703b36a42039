"""Where cards surface: a program's shops and iBeacons on the Apple card (with their text in the member's
language) and on the Google class, validated field by field."""

import io
import json
import zipfile

import pytest

from app.google_cards import loyalty_class
from app.models import OutboxEvent, Program
from app.services import services
from tests.factories import assert_problem, auth, make_member, make_merchant, make_program
from tests.fakes.walletobjects_schema import schema_errors

UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
SHOP = {"name": "Shibuya", "latitude": 35.6595, "longitude": 139.7005,
        "relevant_text": {"en": "Bean There is around the corner", "ja": "すぐそこにBean Thereがあります"}}


def _put(client, key, program_id, **body):
    return client.put(f"/api/v1/programs/{program_id}/locations", json=body, headers=auth(key, None))


def _pass_json(client, member) -> dict:
    data = client.get(member["apple_pass_url"].replace("https://punchpass.test", "")).data
    return json.loads(zipfile.ZipFile(io.BytesIO(data)).read("pass.json"))


@pytest.fixture
def shop(app, client):
    _, key = make_merchant(app)
    return key, make_program(client, key)


def test_locations_and_beacons_go_on_the_card_in_the_members_language(client, shop):
    key, program = shop
    response = _put(client, key, program["id"], locations=[SHOP],
                    beacons=[{"proximity_uuid": UUID, "major": 1, "minor": 7,
                              "relevant_text": {"ja": "レジでカードを見せてください"}}])
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["beacons"][0]["proximity_uuid"] == UUID.upper()
    pass_json = _pass_json(client, make_member(client, key, program["id"], locale="ja"))
    assert pass_json["locations"] == [{"latitude": 35.6595, "longitude": 139.7005,
                                       "relevantText": "すぐそこにBean Thereがあります"}]
    assert pass_json["beacons"] == [{"proximityUUID": UUID.upper(), "major": 1, "minor": 7,
                                     "relevantText": "レジでカードを見せてください"}]
    assert "relevantDate" not in pass_json and "relevantDates" not in pass_json


def test_a_member_whose_language_has_no_text_gets_the_programs_first_language(client, shop):
    key, program = shop
    _put(client, key, program["id"], locations=[{**SHOP, "relevant_text": {"ja": "近くです"}}],
         beacons=[{"proximity_uuid": UUID}])
    pass_json = _pass_json(client, make_member(client, key, program["id"], locale="ko"))
    assert pass_json["locations"][0]["relevantText"] == "近くです"
    assert pass_json["beacons"] == [{"proximityUUID": UUID.upper()}]  # no major/minor/text: any beacon of the UUID


def test_a_card_without_locations_carries_none(client, shop):
    key, program = shop
    pass_json = _pass_json(client, make_member(client, key, program["id"]))
    assert "locations" not in pass_json and "beacons" not in pass_json


def test_eleven_locations_are_refused_and_ten_are_taken(client, shop):
    key, program = shop
    eleven = [{**SHOP, "name": f"Shop {n}", "latitude": 35 + n / 100} for n in range(11)]
    body = assert_problem(_put(client, key, program["id"], locations=eleven), 422)
    assert "locations" in body["errors"]
    assert _put(client, key, program["id"], locations=eleven[:10]).status_code == 200
    assert len(client.get(f"/api/v1/programs/{program['id']}/locations", headers=auth(key)).get_json()[
        "locations"]) == 10


def test_eleven_beacons_are_refused(client, shop):
    key, program = shop
    body = assert_problem(_put(client, key, program["id"], beacons=[{"proximity_uuid": UUID, "major": n}
                                                                    for n in range(11)]), 422)
    assert "beacons" in body["errors"]


@pytest.mark.parametrize("bad, field", [
    ({"latitude": 90.01}, "locations.0.latitude"),
    ({"latitude": -90.5}, "locations.0.latitude"),
    ({"longitude": 180.5}, "locations.0.longitude"),
    ({"longitude": "east"}, "locations.0.longitude"),
    ({"relevant_text": {"fr": "Près d'ici"}}, "locations.0.relevant_text"),
    ({"relevant_text": {"en": "x" * 121}}, "locations.0.relevant_text"),
])
def test_bad_locations_are_refused_naming_the_field(client, shop, bad, field):
    key, program = shop
    body = assert_problem(_put(client, key, program["id"], locations=[{**SHOP, **bad}]), 422)
    assert any(name.startswith(field) for name in body["errors"]), body["errors"]


def test_the_edges_of_the_coordinate_ranges_are_taken(client, shop):
    key, program = shop
    corners = [{**SHOP, "latitude": 90, "longitude": -180}, {**SHOP, "latitude": -90, "longitude": 180}]
    assert _put(client, key, program["id"], locations=corners).status_code == 200


@pytest.mark.parametrize("beacon, field", [
    ({"proximity_uuid": "not-a-uuid"}, "beacons.0.proximity_uuid"),
    ({"proximity_uuid": UUID[:-1]}, "beacons.0.proximity_uuid"),
    ({"proximity_uuid": UUID.replace("-", "")}, "beacons.0.proximity_uuid"),
    ({"proximity_uuid": UUID, "major": 65536}, "beacons.0.major"),
    ({"proximity_uuid": UUID, "major": -1}, "beacons.0.major"),
    ({"proximity_uuid": UUID, "minor": 3}, "beacons.0.minor"),  # a minor means nothing without a major
])
def test_bad_beacons_are_refused_naming_the_field(client, shop, beacon, field):
    key, program = shop
    body = assert_problem(_put(client, key, program["id"], beacons=[beacon]), 422)
    assert field in body["errors"], body["errors"]


def _design(app, program_id) -> tuple[int, int]:
    """(design version, program refreshes queued), read in a transaction of its own."""
    with app.app_context():
        session = services(app).sessions()
        try:
            return (session.get(Program, program_id).design_version,
                    session.query(OutboxEvent).filter_by(program_id=program_id, kind="program_refresh").count())
        finally:
            session.rollback()
            session.close()


def test_a_location_change_reissues_every_card_and_the_same_set_again_changes_nothing(app, client, shop):
    key, program = shop
    make_member(client, key, program["id"])
    version, refreshes = _design(app, program["id"])
    _put(client, key, program["id"], locations=[SHOP])
    assert _design(app, program["id"]) == (version + 1, refreshes + 1)
    _put(client, key, program["id"], locations=[SHOP])
    assert _design(app, program["id"]) == (version + 1, refreshes + 1)


def test_another_merchants_program_is_not_found(app, client, shop):
    _, other_key = make_merchant(app, "Other")
    _, program = shop
    assert_problem(_put(client, other_key, program["id"], locations=[SHOP]), 404)


def test_the_google_class_carries_the_locations_and_fits_googles_schema(google_app):
    client = google_app.test_client()
    _, key = make_merchant(google_app)
    program = make_program(client, key)
    _put(client, key, program["id"], locations=[SHOP, {**SHOP, "latitude": 34.7025, "longitude": 135.4959}])
    with google_app.app_context():
        session = services(google_app).sessions()
        body = loyalty_class(session, services(google_app).config, session.get(Program, program["id"]))
        session.close()
    assert body["merchantLocations"] == [{"latitude": 35.6595, "longitude": 139.7005},
                                         {"latitude": 34.7025, "longitude": 135.4959}]
    assert schema_errors(body, "LoyaltyClass") == []
