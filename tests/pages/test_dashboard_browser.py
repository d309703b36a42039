"""The merchant dashboard in a real Chromium: first sign-in with a one-time password, the branding editor's live
preview and the pass it changes, a chart drawn from seeded data, and the sign-in limit."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest
from playwright.sync_api import expect

from app.domain.users import create_user
from app.services import services
from tests.factories import auth, make_member, make_merchant, make_program, make_reward, redeem
from tests.pages.axe import assert_accessible
from tests.pages.conftest import screenshot

NEW_PASSWORD = "a long and new password"


@pytest.fixture(scope="module")
def owner(live_server):
    app, client = live_server.app, live_server.app.test_client()
    merchant_id, admin = make_merchant(app, "Kissa Hoshi")
    program = make_program(client, admin, name="Kissa Hoshi", branding={"background_color": "#3B2F2F",
                                                                      "foreground_color": "#FFFFFF",
                                                                      "label_color": "#F2B84B"})
    reward = make_reward(client, admin, program["id"], "Free latte", 100)
    members = [make_member(client, admin, program["id"], points=60 * (n + 1), name=name)
               for n, name in enumerate(("Aiko Tanaka", "Mina Park", "Sam Lee", "Yuki Sato"))]
    redeem(client, admin, members[-1]["id"], f"r-{uuid.uuid4()}", reward_id=reward["id"])
    email = f"owner-{uuid.uuid4().hex[:6]}@example.com"
    with app.app_context():
        session = services(app).sessions()
        _user, password = create_user(session, merchant_id, email, "owner")
        session.commit()
        session.close()
    return {"client": client, "admin": admin, "program": program, "member": members[0], "email": email,
            "password": password}


def sign_in(page, email: str, password: str) -> None:
    page.goto("/dashboard/sign-in")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("main button[type=submit]")


def test_first_sign_in_branding_preview_and_the_next_pass(browser, live_server, owner):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US", base_url=live_server.url)
    context.set_default_timeout(15000)  # argon2 and a busy machine: navigations can take seconds
    page = context.new_page()
    page.goto("/dashboard/sign-in")
    screenshot(page, "dashboard-sign-in")
    assert_accessible(page)
    sign_in(page, owner["email"], owner["password"])
    expect(page).to_have_url(f"{live_server.url}/dashboard/password")
    page.fill("#current_password", owner["password"])
    page.fill("#new_password", NEW_PASSWORD)
    page.fill("#confirm_password", NEW_PASSWORD)
    page.click("main form button[type=submit]")
    expect(page.locator("#chart-enrollments rect.series-0").first).to_be_attached()
    assert page.locator("#chart-points rect.series-0").count() == 30  # one column per day, drawn
    screenshot(page, "dashboard-overview")
    assert_accessible(page)
    page.emulate_media(color_scheme="dark")
    screenshot(page, "dashboard-overview-dark")
    page.emulate_media(color_scheme="light")

    page.goto(f"/dashboard/programs/{owner['program']['id']}")
    page.locator("#background_color").fill("#1d4ed8")  # the preview follows before saving
    expect(page.locator("#card-preview")).to_have_css("background-color", "rgb(29, 78, 216)")
    page.fill("#logo_text", "Hoshi Coffee")
    expect(page.locator("#preview-logo-text")).to_have_text("Hoshi Coffee")
    page.click("#branding-form button[type=submit]")
    expect(page.locator("#note")).to_be_visible()
    expect(page.locator("#card-preview")).to_have_css("background-color", "rgb(29, 78, 216)")
    screenshot(page, "dashboard-branding")
    assert_accessible(page, exclude=("#card-preview",))  # the merchant's colours, shown as the wallet will
    response = owner["client"].get(f"/api/v1/members/{owner['member']['id']}/pass.pkpass", headers=auth(owner["admin"]))
    card = json.loads(zipfile.ZipFile(io.BytesIO(response.data)).read("pass.json"))
    assert card["backgroundColor"] == "rgb(29, 78, 216)" and card["logoText"] == "Hoshi Coffee"

    page.goto("/dashboard/members")
    expect(page.locator("#members")).to_contain_text("Mina Park")
    screenshot(page, "dashboard-members")
    assert_accessible(page)
    context.close()


def test_five_wrong_passwords_are_rate_limited(page, owner, live_server):
    try:
        for _ in range(5):
            sign_in(page, owner["email"], "not the password")
            expect(page.locator("#sign-in-error")).to_contain_text("Wrong email or password")
        sign_in(page, owner["email"], NEW_PASSWORD)
        expect(page.locator("#sign-in-error")).to_contain_text("Too many wrong passwords")
    finally:
        forget_sign_in_limits(live_server)


def forget_sign_in_limits(live_server) -> None:
    """The browser signs in from 127.0.0.1 in every test of the session's one server: a test that uses up the
    address's wrong passwords (or the account's) must not lock the next test out. The test server counts in
    memory (no REDIS_URL), so this clears only its own counters."""
    for limiter in live_server.app.extensions.get("limiter", ()):
        limiter.reset()
