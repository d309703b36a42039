"""An earn reads its program's configuration from the process's cache; any edit of the program, its tiers or
rewards reaches the next earn at once, in every process (app/domain/program_config.py)."""

from app import create_app
from app.config import load_config
from app.services import services
from tests.factories import auth, earn, make_member, make_merchant, make_program, make_reward


def test_an_edit_of_the_rate_tiers_or_rewards_reaches_the_next_earn_in_another_process(app, client, test_env):
    other = create_app(load_config(test_env), testing=True)
    try:
        other_client = other.test_client()
        _, key = make_merchant(app)
        program = make_program(client, key, points_per_unit=1)
        member = make_member(client, key, program["id"])
        assert earn(other_client, key, member["id"], amount="10").get_json()["transaction"]["points"] == 10

        edited = client.patch(f"/api/v1/programs/{program['id']}", headers=auth(key), json={
            "points_per_unit": 3, "tiers": [{"name": "Bronze", "threshold": 0}, {"name": "Gold", "threshold": 25}]})
        assert edited.status_code == 200
        make_reward(client, key, program["id"], "Free cake", 100)

        answer = earn(other_client, key, member["id"], amount="10").get_json()
        assert answer["transaction"]["points"] == 30
        assert answer["member"]["tier"] == "Gold"
        assert answer["member"]["next_reward"]["name"] == "Free cake"
    finally:
        services(other).engine.dispose()


def test_a_retired_reward_leaves_the_next_earns_answer_at_once(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key)
    reward = make_reward(client, key, program["id"], "Free coffee", 100)
    member = make_member(client, key, program["id"])
    assert earn(client, key, member["id"], points=1).get_json()["member"]["next_reward"]["name"] == "Free coffee"

    assert client.delete(f"/api/v1/rewards/{reward['id']}", headers=auth(key)).status_code in (200, 204)

    assert earn(client, key, member["id"], points=1).get_json()["member"]["next_reward"] is None
