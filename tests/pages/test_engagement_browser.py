"""The engagement pages in a real Chromium: the dashboard's campaigns, challenges and offers pages and the
program page's referral and survey forms for the owner, and the customer's survey page in Japanese; each checked
with axe and photographed (PUNCHPASS_SCREENSHOTS=1)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from app.domain.users import create_user
from app.services import services
from tests.factories import auth, earn, make_member, make_merchant, make_program
from tests.pages.axe import assert_accessible
from tests.pages.conftest import screenshot
from tests.pages.test_dashboard_browser import forget_sign_in_limits, sign_in

NEW_PASSWORD = "a long and new password"


@pytest.fixture(scope="module")
def shop(live_server):
    app, client = live_server.app, live_server.app.test_client()
    merchant_id, admin = make_merchant(app, "Kissa Hoshi")
    program = make_program(client, admin, name="Kissa Hoshi", timezone="Asia/Tokyo")
    member = make_member(client, admin, program["id"], points=120, name="Aiko Tanaka", locale="ja")
    post = lambda path, body: client.post(path, json=body, headers=auth(admin))  # noqa: E731
    segment = post(f"/api/v1/programs/{program['id']}/segments", {
        "name": "Regulars", "rules": {"conditions": [{"field": "points_balance", "op": "gte", "value": 100}]}})
    assert segment.status_code == 201, segment.get_json()
    campaign = post(f"/api/v1/programs/{program['id']}/campaigns", {
        "name": "Autumn latte", "segment_id": segment.get_json()["id"], "send_at": "2099-10-01T00:00:00Z",
        "message": {"title": {"en": "Autumn is here", "ja": "秋の新作"}, "body": {"en": "Try our maple latte",
                                                                                "ja": "メープルラテをどうぞ"}}})
    assert campaign.status_code == 201, campaign.get_json()
    challenge = post(f"/api/v1/programs/{program['id']}/challenges", {
        "name": "Three visits", "goal": "visits", "target": 3, "window": "month", "reward_points": 50})
    assert challenge.status_code == 201, challenge.get_json()
    offer = post(f"/api/v1/programs/{program['id']}/offers", {
        "name": "Welcome", "kind": "default", "texts": {"en": "A free cookie", "ja": "クッキー無料"}})
    assert offer.status_code == 201, offer.get_json()
    survey = post(f"/api/v1/programs/{program['id']}/surveys", {
        "title": "How was your visit?", "title_translations": {"ja": "ご来店はいかがでしたか？"},
        "questions": [
            {"kind": "rating", "text": "How was the coffee?", "translations": {"ja": "コーヒーはいかがでしたか？"}},
            {"kind": "text", "text": "Anything else?", "translations": {"ja": "ほかにご意見は？"}}]})
    assert survey.status_code == 201, survey.get_json()
    sent = post(f"/api/v1/surveys/{survey.get_json()['id']}/send", {"member_id": member["id"]})
    assert sent.status_code == 201, sent.get_json()
    earn(client, admin, member["id"], amount="4.50")
    email = f"owner-{uuid.uuid4().hex[:6]}@example.com"
    with app.app_context():
        session = services(app).sessions()
        _user, password = create_user(session, merchant_id, email, "owner")
        session.commit()
        session.close()
    return {"program": program, "email": email, "password": password, "survey_url": sent.get_json()["url"]}


@pytest.fixture
def owner_page(browser, live_server, shop):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US", base_url=live_server.url)
    context.set_default_timeout(15000)
    page = context.new_page()
    forget_sign_in_limits(live_server)  # whatever ran before on this server from 127.0.0.1
    sign_in(page, shop["email"], shop["password"])
    if page.url.endswith("/dashboard/password"):  # the first sign-in of the module: the one-time password
        page.fill("#current_password", shop["password"])
        page.fill("#new_password", NEW_PASSWORD)
        page.fill("#confirm_password", NEW_PASSWORD)
        page.click("main form button[type=submit]")
        shop["password"] = NEW_PASSWORD
    expect(page.locator("nav.dash-nav")).to_be_visible()
    yield page
    context.close()


def test_the_campaigns_challenges_and_offers_pages_show_what_the_api_made(owner_page, shop):
    page = owner_page
    page.goto("/dashboard/campaigns")
    expect(page.locator("main")).to_contain_text("Regulars")
    expect(page.locator("main")).to_contain_text("Autumn latte")
    screenshot(page, "dashboard-campaigns")
    assert_accessible(page)
    page.goto("/dashboard/challenges")
    expect(page.locator("main")).to_contain_text("Three visits")
    screenshot(page, "dashboard-challenges")
    assert_accessible(page)
    page.goto(f"/dashboard/programs/{shop['program']['id']}/offers")
    expect(page.locator("main")).to_contain_text("Welcome")
    screenshot(page, "dashboard-offers")
    assert_accessible(page)


def test_the_program_page_sets_referrals_and_shows_the_survey(owner_page, shop):
    page = owner_page
    page.goto(f"/dashboard/programs/{shop['program']['id']}")
    expect(page.locator("main")).to_contain_text("How was your visit?")
    screenshot(page, "dashboard-program-engagement")
    assert_accessible(page, exclude=("#card-preview",))  # the merchant's colours, shown as the wallet will


def test_the_customer_answers_the_survey_in_japanese(page, shop):
    page.goto(urlsplit(shop["survey_url"]).path + "?lang=ja")
    expect(page.locator("h1")).to_contain_text("ご来店はいかがでしたか？")
    screenshot(page, "survey-ja")
    assert_accessible(page)
