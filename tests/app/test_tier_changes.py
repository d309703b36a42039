"""Tiers change while members hold them: a tier item with an `id` changes that tier in place, the set is replaced
atomically, upgrades happen at once, nobody is downgraded by a rule edit, and `next_tier` is always right."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import event, select

from app.domain import events
from app.models import OutboxEvent
from app.services import db_session, services
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program


@pytest.fixture(scope="module")
def app(own_database_app):
    """This module's many earns and tier changes stay out of the shared database's outbox."""
    return own_database_app


@pytest.fixture
def shop(app, client):
    """Bronze 0, Silver 200, Gold 500; Ann has 100 points (Bronze), Bo 300 (Silver), Cy 600 (Gold)."""
    _, key = make_merchant(app)
    program = make_program(client, key, tiers=[{"name": "Bronze", "threshold": 0},
                                               {"name": "Silver", "threshold": 200},
                                               {"name": "Gold", "threshold": 500}])
    people = {name: make_member(client, key, program["id"], points=points, name=name)
              for name, points in (("Ann", 100), ("Bo", 300), ("Cy", 600))}
    return key, program, people


def patch_tiers(client, key, program, tiers):
    return client.patch(f"/api/v1/programs/{program['id']}", json={"tiers": tiers}, headers=auth(key))


def tier_ids(program) -> dict[str, int]:
    return {t["name"]: t["id"] for t in program["tiers"]}


def member(client, key, person) -> dict:
    return client.get(f"/api/v1/members/{person['id']}", headers=auth(key)).get_json()


def standing(client, key, people) -> dict:
    """name -> (tier, next tier name, points to it)."""
    out = {}
    for name, person in people.items():
        got = member(client, key, person)
        goal = got["next_tier"]
        out[name] = (got["tier"], goal and goal["name"], goal and goal["points_needed"])
    return out


def test_program_tiers_carry_ids(shop):
    _, program, _ = shop
    assert all(isinstance(t["id"], int) for t in program["tiers"])


def test_renaming_a_held_tier_in_place_keeps_its_members(client, shop):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": ids["Silver"], "name": "Silver", "threshold": 200},
                                                  {"id": ids["Gold"], "name": "Gold Plus", "threshold": 500}])
    assert response.status_code == 200, response.get_json()
    assert tier_ids(response.get_json())["Gold Plus"] == ids["Gold"]
    assert member(client, key, people["Cy"])["tier"] == "Gold Plus"


def test_removing_a_held_tier_moves_its_members_to_the_tier_they_qualify_for(client, shop):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": ids["Gold"], "name": "Gold", "threshold": 500}])
    assert response.status_code == 200, response.get_json()
    assert [t["name"] for t in response.get_json()["tiers"]] == ["Bronze", "Gold"]
    assert standing(client, key, people) == {"Ann": ("Bronze", "Gold", 400), "Bo": ("Bronze", "Gold", 200),
                                             "Cy": ("Gold", None, None)}


def test_tiers_without_ids_replace_the_whole_set_even_while_held(client, shop):
    key, program, people = shop
    response = patch_tiers(client, key, program, [{"name": "Member", "threshold": 0},
                                                  {"name": "VIP", "threshold": 250}])
    assert response.status_code == 200, response.get_json()
    assert standing(client, key, people) == {"Ann": ("Member", "VIP", 150), "Bo": ("VIP", None, None),
                                             "Cy": ("VIP", None, None)}


def test_a_new_tier_may_take_the_name_of_a_removed_one(client, shop):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"name": "Gold", "threshold": 250}])
    assert response.status_code == 200, response.get_json()
    assert tier_ids(response.get_json())["Gold"] != ids["Gold"]
    assert member(client, key, people["Bo"])["tier"] == "Gold"


def test_swapping_two_tier_names_in_one_patch_works(client, shop):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": ids["Silver"], "name": "Gold", "threshold": 200},
                                                  {"id": ids["Gold"], "name": "Silver", "threshold": 500}])
    assert response.status_code == 200, response.get_json()
    assert member(client, key, people["Bo"])["tier"] == "Gold"
    assert member(client, key, people["Cy"])["tier"] == "Silver"


@pytest.mark.parametrize("bad_id", ["another program's", "unknown", "listed twice"])
def test_an_unknown_tier_id_is_422_naming_it_and_changes_nothing(app, client, shop, bad_id):
    key, program, people = shop
    ids = tier_ids(program)
    other = make_program(client, key)
    wrong = {"another program's": other["tiers"][0]["id"], "unknown": 2**62, "listed twice": ids["Bronze"]}[bad_id]
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": wrong, "name": "Platinum", "threshold": 900}])
    assert "tiers.1.id" in assert_problem(response, 422)["errors"]
    after = client.get(f"/api/v1/programs/{program['id']}", headers=auth(key)).get_json()
    assert after["tiers"] == program["tiers"]


def test_an_id_on_a_new_program_tier_is_422(app, client):
    _, key = make_merchant(app)
    response = client.post("/api/v1/programs", json={"name": "B", "tiers": [{"id": 5, "name": "G", "threshold": 1}]},
                           headers=auth(key))
    assert "tiers.0.id" in assert_problem(response, 422)["errors"]


def test_lowering_a_threshold_upgrades_members_at_once(client, shop):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": ids["Silver"], "name": "Silver", "threshold": 50},
                                                  {"id": ids["Gold"], "name": "Gold", "threshold": 250}])
    assert response.status_code == 200, response.get_json()
    assert standing(client, key, people) == {"Ann": ("Silver", "Gold", 150), "Bo": ("Gold", None, None),
                                             "Cy": ("Gold", None, None)}


def test_raising_a_threshold_downgrades_nobody_and_next_tier_is_above_the_held_one(client, shop):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": ids["Silver"], "name": "Silver", "threshold": 200},
                                                  {"id": ids["Gold"], "name": "Gold", "threshold": 5000},
                                                  {"name": "Platinum", "threshold": 9000}])
    assert response.status_code == 200, response.get_json()
    assert standing(client, key, people) == {"Ann": ("Bronze", "Silver", 100), "Bo": ("Silver", "Gold", 4700),
                                             "Cy": ("Gold", "Platinum", 8400)}


def test_earning_after_a_threshold_raise_keeps_the_held_tier(client, shop):
    key, program, people = shop
    ids = tier_ids(program)
    patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                       {"id": ids["Gold"], "name": "Gold", "threshold": 5000}])
    earned = earn(client, key, people["Cy"]["id"], points=10)
    assert earned.get_json()["member"]["tier"] == "Gold"


def test_a_tier_change_reaches_the_card(client, shop):
    key, program, people = shop
    patch_tiers(client, key, program, [{"name": "Member", "threshold": 0}])
    card = client.get(people["Ann"]["apple_pass_url"].replace("https://punchpass.test", ""))
    pass_json = json.loads(zipfile.ZipFile(io.BytesIO(card.data)).read("pass.json"))
    fields = {f["key"]: f["value"] for group in pass_json["storeCard"].values() for f in group}
    assert fields["tier"] == "Member"


def test_retiering_that_moves_nobody_costs_one_query_per_tier_however_many_members(app, client, shop):
    key, program, people = shop
    ids = tier_ids(program)
    for n in range(20):
        make_member(client, key, program["id"], points=n * 10, name=f"Extra {n}")
    statements = []

    def count(conn, cursor, statement, *args):
        if "members" in statement.split("WHERE")[0].lower():
            statements.append(statement)

    engine = services(app).engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                      {"id": ids["Silver"], "name": "Silver", "threshold": 250},
                                                      {"id": ids["Gold"], "name": "Gold", "threshold": 900}])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.get_json()
    assert standing(client, key, {"Bo": people["Bo"]}) == {"Bo": ("Silver", "Gold", 600)}
    assert len(statements) <= 4, statements  # one search per tier; nobody moved, nobody loaded


@pytest.fixture
def told(app):
    """The events every listening channel would receive, as (type, member id, data)."""
    heard = []
    events.add_channel("test-tier-ears", lambda session, merchant_id, type, member_id: True)
    yield heard
    events._channels.pop("test-tier-ears")


def tier_events(app, people) -> dict[str, dict]:
    names = {person["id"]: name for name, person in people.items()}
    with app.app_context():
        rows = db_session().scalars(select(OutboxEvent).where(OutboxEvent.kind == "test-tier-ears",
                                                              OutboxEvent.member_id.in_(names))).all()
    bodies = [row.payload["event"] for row in rows if row.payload["event"]["type"] == "tier.changed"]
    assert len(bodies) == len({body["data"]["member_id"] for body in bodies}), "one tier.changed per member"
    return {names[body["data"]["member_id"]]: body["data"] for body in bodies}


def test_an_upgrade_by_a_rule_edit_is_told_once_per_member_and_reaches_the_card(app, client, shop, told):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": ids["Silver"], "name": "Silver", "threshold": 50},
                                                  {"id": ids["Gold"], "name": "Gold", "threshold": 250}])
    assert response.status_code == 200, response.get_json()
    changes = tier_events(app, people)
    assert {name: (data["tier"], data["previous_tier"], data["upgrade"]) for name, data in changes.items()} == {
        "Ann": ("Silver", "Bronze", True), "Bo": ("Gold", "Silver", True)}  # Cy was Gold already
    card = client.get(people["Bo"]["apple_pass_url"].replace("https://punchpass.test", ""))
    pass_json = json.loads(zipfile.ZipFile(io.BytesIO(card.data)).read("pass.json"))
    assert {f["key"]: f["value"] for group in pass_json["storeCard"].values() for f in group}["tier"] == "Gold"


def test_members_of_a_removed_tier_are_told_what_they_see_now(app, client, shop, told):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": ids["Silver"], "name": "Silver", "threshold": 200}])
    assert response.status_code == 200, response.get_json()
    changes = tier_events(app, people)
    assert {name: (data["tier"], data["previous_tier"], data["upgrade"]) for name, data in changes.items()} == {
        "Cy": ("Silver", "Gold", False)}


def test_a_removed_tier_s_members_who_qualify_higher_are_told_once_from_the_removed_tier(app, client, shop, told):
    key, program, people = shop
    ids = tier_ids(program)
    response = patch_tiers(client, key, program, [{"id": ids["Bronze"], "name": "Bronze", "threshold": 0},
                                                  {"id": ids["Gold"], "name": "Gold", "threshold": 250}])
    assert response.status_code == 200, response.get_json()
    changes = tier_events(app, people)
    assert {name: (data["tier"], data["previous_tier"], data["upgrade"]) for name, data in changes.items()} == {
        "Bo": ("Gold", "Silver", True)}
