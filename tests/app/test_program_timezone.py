"""A program's calendar has a time zone: an IANA name, UTC unless given."""

from tests.factories import assert_problem, auth, make_merchant, make_program


def test_a_program_is_in_utc_unless_given_a_zone(app, client):
    _, key = make_merchant(app)

    assert make_program(client, key)["timezone"] == "UTC"
    assert make_program(client, key, timezone="Asia/Tokyo")["timezone"] == "Asia/Tokyo"


def test_the_zone_can_be_changed_and_is_read_back(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)

    response = client.patch(f"/api/v1/programs/{program['id']}", json={"timezone": "Asia/Seoul"}, headers=auth(key))

    assert response.status_code == 200 and response.get_json()["timezone"] == "Asia/Seoul"
    assert client.get(f"/api/v1/programs/{program['id']}", headers=auth(key)).get_json()["timezone"] == "Asia/Seoul"


def test_a_zone_that_is_not_an_iana_name_is_422_naming_the_field(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)

    for bad in ("JST+9", "../../etc/localtime", "", "Mars/Olympus_Mons"):
        created = client.post("/api/v1/programs", json={"name": "P", "timezone": bad}, headers=auth(key))
        patched = client.patch(f"/api/v1/programs/{program['id']}", json={"timezone": bad}, headers=auth(key))
        assert "timezone" in assert_problem(created, 422)["errors"]
        assert "timezone" in assert_problem(patched, 422)["errors"]
