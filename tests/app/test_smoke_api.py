from tests.factories import auth, earn, make_member, make_merchant, make_program


def test_enrol_and_earn_round_trip(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, points_per_unit="1")
    member = make_member(client, key, program["id"])
    response = earn(client, key, member["id"], amount="12.50")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["member"]["points_balance"] == 12
    got = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert got["points_balance"] == 12 and got["tier"] == "Bronze"
