"""The owner sets up referrals and surveys on the program page: each save goes through the API's schema and
domain, so the API shows the change, a bad value is refused naming its field with nothing saved, and staff
cannot save."""

from __future__ import annotations

import uuid

import pytest

from tests.dashboard.helpers import signed_in_owner
from tests.factories import auth, make_merchant, make_program

REFERRALS = {"enabled": "on", "trigger": "every_purchase", "within_days": "30", "referrer_points": "150",
             "referee_points": "50", "max_per_referrer_per_day": "3", "max_per_ip_per_day": "",
             "max_referrals": "20"}
SURVEY = {"title": "Your visit", "question_kind": ["rating", "choice", "text", "rating", "rating"],
          "question_text": ["How was your coffee?", "Which size?", "Anything else?", "", ""],
          "question_choices": ["", "Small, Medium ,Large", "", "", ""], "bonus_points": "25", "after_purchases": "3"}


@pytest.fixture
def shop(app):
    client = app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, name="Kissa Hoshi")
    owner = signed_in_owner(app, merchant_id, f"owner-{uuid.uuid4().hex[:8]}@example.com")
    return {"client": client, "admin": admin, "merchant_id": merchant_id, "owner": owner,
            "page": f"/dashboard/programs/{program['id']}", "program_id": program["id"]}


def api_program(shop) -> dict:
    return shop["client"].get(f"/api/v1/programs/{shop['program_id']}", headers=auth(shop["admin"])).get_json()


def api_surveys(shop) -> list[dict]:
    return shop["client"].get(f"/api/v1/programs/{shop['program_id']}/surveys",
                              headers=auth(shop["admin"])).get_json()["data"]


def test_referral_settings_saved_on_the_program_page_are_the_apis(shop):
    shop["client"].patch(f"/api/v1/programs/{shop['program_id']}", headers=auth(shop["admin"]), json={
        "referrals": {"trigger": "signup", "referrer_points": 10, "tiers": [{"from": 3, "referrer_points": 40}]}})
    response = shop["owner"].post(f"{shop['page']}/referrals", REFERRALS, page=shop["page"])
    assert response.status_code == 303
    assert api_program(shop)["referrals"] == {
        "trigger": "every_purchase", "within_days": 30, "referrer_points": 150, "referee_points": 50,
        "tiers": [{"from": 3, "referrer_points": 40}], "max_referrals": 20, "max_per_referrer_per_day": 3,
        "max_per_ip_per_day": None}
    page = shop["owner"].get(shop["page"]).get_data(as_text=True)
    assert "Referral settings saved." in page
    assert 'name="referrer_points" inputmode="numeric" value="150"' in page
    assert "紹介者へのポイント" in shop["owner"].get(f"{shop['page']}?lang=ja").get_data(as_text=True)

    shop["owner"].post(f"{shop['page']}/referrals", {**REFERRALS, "enabled": ""}, page=shop["page"])
    assert api_program(shop)["referrals"] is None


@pytest.mark.parametrize("change, field", [({"within_days": ""}, "within_days"),
                                           ({"referee_points": "-5"}, "referee_points"),
                                           ({"max_per_ip_per_day": "lots"}, "max_per_ip_per_day"),
                                           ({"trigger": "birthday"}, "trigger")])
def test_a_bad_referral_setting_is_refused_naming_it_and_nothing_is_saved(shop, change, field):
    shop["owner"].post(f"{shop['page']}/referrals", {**REFERRALS, **change}, page=shop["page"])
    page = shop["owner"].get(shop["page"]).get_data(as_text=True)
    assert f"{field}: " in page and "Referral settings saved." not in page
    assert api_program(shop)["referrals"] is None


def test_a_survey_created_and_switched_off_on_the_program_page_is_the_apis(shop):
    assert shop["owner"].post(f"{shop['page']}/surveys", SURVEY, page=shop["page"]).status_code == 303
    (survey,) = api_surveys(shop)
    assert (survey["title"], survey["bonus_points"], survey["after_purchases"], survey["active"]) == (
        "Your visit", 25, 3, True)
    assert [(q["kind"], q["text"], q["choices"]) for q in survey["questions"]] == [
        ("rating", "How was your coffee?", []), ("choice", "Which size?", ["Small", "Medium", "Large"]),
        ("text", "Anything else?", [])]
    assert "Your visit" in shop["owner"].get(shop["page"]).get_data(as_text=True)

    shop["owner"].post(f"/dashboard/surveys/{survey['id']}/active", {"active": "false"}, page=shop["page"])
    assert api_surveys(shop)[0]["active"] is False
    assert "Switch on" in shop["owner"].get(shop["page"]).get_data(as_text=True)
    shop["owner"].post(f"/dashboard/surveys/{survey['id']}/active", {"active": "true"}, page=shop["page"])
    assert api_surveys(shop)[0]["active"] is True


@pytest.mark.parametrize("change, field", [
    ({"question_choices": ["", "Only one", "", "", ""]}, "questions: choices"),
    ({"title": ""}, "title"),
    ({"question_text": [""] * 5}, "questions"),
    ({"after_purchases": "0"}, "after_purchases")])
def test_a_bad_survey_is_refused_naming_the_field_and_nothing_is_saved(shop, change, field):
    shop["owner"].post(f"{shop['page']}/surveys", {**SURVEY, **change}, page=shop["page"])
    page = shop["owner"].get(shop["page"]).get_data(as_text=True)
    assert f"{field}: " in page and "Survey saved." not in page
    assert api_surveys(shop) == []


def test_staff_see_the_settings_but_cannot_save_them(app, shop):
    shop["owner"].post(f"{shop['page']}/surveys", SURVEY, page=shop["page"])
    (survey,) = api_surveys(shop)
    staff = signed_in_owner(app, shop["merchant_id"], f"staff-{uuid.uuid4().hex[:8]}@example.com", role="staff")
    page = staff.get(shop["page"]).get_data(as_text=True)
    assert 'id="referrals-form"' in page and 'id="survey-form"' not in page and "Switch off" not in page
    assert staff.post(f"{shop['page']}/referrals", REFERRALS, page=shop["page"]).status_code == 403
    assert staff.post(f"{shop['page']}/surveys", SURVEY, page=shop["page"]).status_code == 403
    assert staff.post(f"/dashboard/surveys/{survey['id']}/active", {"active": "false"},
                      page=shop["page"]).status_code == 403
    assert api_program(shop)["referrals"] is None
    assert [(s["title"], s["active"]) for s in api_surveys(shop)] == [("Your visit", True)]


def test_another_merchants_survey_cannot_be_switched(app, shop):
    shop["owner"].post(f"{shop['page']}/surveys", SURVEY, page=shop["page"])
    (survey,) = api_surveys(shop)
    other_id, _ = make_merchant(app, "Elsewhere")
    other = signed_in_owner(app, other_id, f"other-{uuid.uuid4().hex[:8]}@example.com")
    assert other.post(f"/dashboard/surveys/{survey['id']}/active", {"active": "false"},
                      page="/dashboard").status_code == 404
    assert other.post(f"{shop['page']}/referrals", REFERRALS, page="/dashboard").status_code == 404
    assert api_surveys(shop)[0]["active"] is True
