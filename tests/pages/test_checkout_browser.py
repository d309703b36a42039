"""The staff checkout page in a real Chromium: what a till does, tap by tap, on a phone-sized screen."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from app.models import Hold, utcnow
from app.services import services
from tests.factories import auth, make_api_key, make_member, make_merchant, make_program, make_reward
from tests.pages.axe import assert_accessible
from tests.pages.conftest import screenshot


@pytest.fixture(scope="module")
def merchant(live_server):
    """A merchant with a program, two rewards and a till key, shared by the module's tests."""
    app, client = live_server.app, live_server.app.test_client()
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin)
    coffee = make_reward(client, admin, program["id"], "Free coffee", 100)
    cake = make_reward(client, admin, program["id"], "Cheesecake", 250)
    till = make_api_key(app, merchant_id, "pos")
    return {"client": client, "admin": admin, "till": till, "program": program, "coffee": coffee, "cake": cake,
            "merchant_id": merchant_id}


@pytest.fixture
def shop(merchant):
    """The merchant and a member of its own with 150 points."""
    member = make_member(merchant["client"], merchant["admin"], merchant["program"]["id"], points=150,
                         name="Mina Park")
    return {**merchant, "member": member}


def sign_in(page, credential: str) -> None:
    page.goto("/checkout")
    page.fill("#credential", credential)
    page.click("text=Sign in")


def signed_in(page, shop) -> None:
    sign_in(page, shop["till"])
    expect(page.locator("#code")).to_be_focused()


def member_points(shop) -> int:
    member = shop["client"].get(f"/api/v1/members/{shop['member']['id']}", headers=auth(shop["admin"])).get_json()
    return member["points_balance"]


def transactions(shop) -> list[dict]:
    return shop["client"].get(f"/api/v1/members/{shop['member']['id']}/transactions",
                              headers=auth(shop["admin"])).get_json()["data"]


def scan_by_keyboard(page, code: str) -> None:
    """What a USB scanner does: type the code, then Enter."""
    page.keyboard.type(code)
    page.keyboard.press("Enter")


def test_sign_in_with_a_pos_key_then_scan_by_keyboard_wedge(page, shop):
    page.goto("/checkout")
    screenshot(page, "checkout-sign-in")
    assert_accessible(page)
    page.fill("#credential", shop["till"])
    page.click("text=Sign in")
    expect(page.locator("#code")).to_be_focused()
    assert shop["till"] not in page.content()
    assert page.evaluate("document.cookie") == ""  # HttpOnly: the page's script cannot read the session
    assert shop["till"] not in page.url and not page.evaluate("Object.keys(localStorage).length")
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    expect(page.locator("#member-name")).to_have_text("Mina Park")
    expect(page.locator("#member-points")).to_have_text("150")
    expect(page.locator("#member-tier")).to_have_text("Bronze")
    expect(page.locator("button.reward", has_text="Free coffee")).to_be_enabled()
    expect(page.locator("button.reward", has_text="Cheesecake")).to_be_disabled()  # 250 > 150: greyed
    screenshot(page, "checkout-member")
    assert_accessible(page)
    page.emulate_media(color_scheme="dark")
    screenshot(page, "checkout-member-dark")
    assert_accessible(page)
    page.emulate_media(color_scheme="light")
    page.click("#member-name")  # the focus is off the code field: the scanner's typing still lands there, whole
    scan_by_keyboard(page, "no-such-card")
    expect(page.locator("#status")).to_have_text("No card found for “no-such-card”. Check the code and try again.")


def test_a_wrong_pos_key_is_refused_with_a_sentence(page, shop):
    sign_in(page, "pp_pos_" + "x" * 43)
    expect(page.locator(".status.error")).to_have_text(re.compile("unknown or revoked"))
    sign_in(page, shop["admin"])
    expect(page.locator(".status.error")).to_have_text(re.compile("admin key"))
    expect(page.locator("#credential")).to_be_visible()


def test_scan_by_camera_decodes_the_card_qr(page, shop, fake_camera):
    fake_camera.show(shop["member"]["barcode_value"])
    signed_in(page, shop)
    # Chromium's fake camera now and then starts without delivering frames (seen once in ten CI runs, on a busy
    # machine): like staff at a till, press the button again. Three starts that never decode still fail.
    for attempt in range(3):
        page.click("#camera-button")
        try:
            expect(page.locator("#member-name")).to_have_text("Mina Park", timeout=10_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
            if page.locator("#camera").is_visible():
                page.click("#camera-button")  # stop it, to start it afresh
    expect(page.locator("#camera")).to_be_hidden()  # the camera stops once it has read a code


def test_earn_an_amount_typed_on_the_keypad(page, shop):
    signed_in(page, shop)
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    for key in "12.50":
        page.click(f"#keypad [data-key='{key}']")
    expect(page.locator("#amount")).to_have_text("12.50")
    page.click("#earn")
    expect(page.locator("#status")).to_contain_text("+12 points. 162 available now.")
    expect(page.locator("#status .receipt")).to_contain_text("+12 points · 162 available")  # the till's receipt
    expect(page.locator("#member-points")).to_have_text("162")
    expect(page.locator("#amount")).to_have_text("0")
    assert member_points(shop) == 162


def test_a_double_tap_earns_once_and_says_already_done(page, shop):
    signed_in(page, shop)
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    for key in "40":
        page.click(f"#keypad [data-key='{key}']")
    page.dblclick("#earn")
    expect(page.locator("#replayed")).to_be_visible()
    expect(page.locator("#member-points")).to_have_text("190")
    assert member_points(shop) == 190
    assert [entry["kind"] for entry in transactions(shop)].count("earn") == 2  # the setup's 150, then 40 once


def test_redeem_a_reward_asks_then_charges(page, shop):
    signed_in(page, shop)
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    page.click("button.reward:has-text('Free coffee')")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_have_text("Redeem Free coffee for 100 points?")
    screenshot(page, "checkout-redeem-confirm")
    assert_accessible(page)
    page.click("#confirm-yes")
    expect(page.locator("#status")).to_contain_text("Free coffee redeemed. 50 points left.")
    expect(page.locator("#status .receipt")).to_contain_text("-100 points · 50 available")
    expect(page.locator("#member-points")).to_have_text("50")
    expect(page.locator("button.reward", has_text="Free coffee")).to_be_disabled()
    assert member_points(shop) == 50


def test_an_expired_hold_is_not_charged(page, shop, live_server):
    signed_in(page, shop)
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    page.click("button.reward:has-text('Free coffee')")
    expect(page.locator("#confirm")).to_be_visible()
    with live_server.app.app_context(), services(live_server.app).sessions() as session:  # the till waited too long
        session.execute(update(Hold).where(Hold.member_id == shop["member"]["id"])
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    page.click("#confirm-yes")
    expect(page.locator("#status")).to_have_text("This hold has already ended (expired); nothing was charged. "
                                                 "Start again.")
    expect(page.locator("#member-points")).to_have_text("150")
    assert member_points(shop) == 150


def test_undo_the_last_earn_within_a_minute(page, shop):
    signed_in(page, shop)
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    for key in "25":
        page.click(f"#keypad [data-key='{key}']")
    page.click("#earn")
    expect(page.locator("#member-points")).to_have_text("175")
    expect(page.locator("#undo")).to_have_text(re.compile(r"Undo \((60|59|58) s\)"))
    page.click("#undo")
    expect(page.locator("#status")).to_have_text("Undone. 150 points available.")
    expect(page.locator("#undo")).to_be_hidden()
    assert member_points(shop) == 150


def test_a_hold_placed_elsewhere_is_listed_and_can_be_charged(page, shop):
    shop["client"].post("/api/v1/checkout/holds", json={"member_id": shop["member"]["id"], "points": 30},
                        headers=auth(shop["till"], str(uuid.uuid4())))
    signed_in(page, shop)
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    expect(page.locator("#member-points")).to_have_text("120")
    expect(page.locator("#member-held")).to_have_text("30 held")
    page.click("#hold-list button:has-text('Charge')")
    expect(page.locator("#holds")).to_be_hidden()
    expect(page.locator("#member-points")).to_have_text("120")
    assert member_points(shop) == 120


def test_cancel_spends_nothing(page, shop):
    signed_in(page, shop)
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    page.click("button.reward:has-text('Free coffee')")
    page.click("#confirm-no")
    expect(page.locator("#status")).to_have_text("Cancelled. No points were spent.")
    expect(page.locator("#member-points")).to_have_text("150")
    assert member_points(shop) == 150


def test_not_enough_points_is_a_sentence(page, shop):
    signed_in(page, shop)
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    expect(page.locator("#member-points")).to_have_text("150")
    shop["client"].post(f"/api/v1/members/{shop['member']['id']}/redeem", json={"points": 120},
                        headers=auth(shop["admin"], str(uuid.uuid4())))  # spent at another till meanwhile
    page.click("button.reward:has-text('Free coffee')")
    if page.locator("#confirm").is_visible():  # no holds API: the refusal comes with the confirmation
        page.click("#confirm-yes")
    expect(page.locator("#status")).to_have_text("Not enough points: 30 available, 100 needed.")
    expect(page.locator("#member-points")).to_have_text("30")
    assert member_points(shop) == 30


def test_enrol_at_the_counter_shows_the_card_qr(page, shop):
    signed_in(page, shop)
    page.click("#enrol-button")
    page.fill("#enrol-name", "Jun Sato")
    page.fill("#enrol-email", "jun@example.com")
    page.click("text=Create card")
    expect(page.locator("#enrolled-text")).to_contain_text("Welcome, Jun Sato!")
    qr = page.locator("#enrolled-qr")
    expect(qr).to_be_visible()
    expect(qr).to_have_js_property("complete", True)
    # the SVG loaded (decode waits for it): the till is signed in for it
    assert qr.evaluate("image => image.decode().then(() => image.naturalWidth)") > 0
    screenshot(page, "checkout-enrolled")
    assert_accessible(page)
    page.click("#enrolled-continue")
    expect(page.locator("#member-name")).to_have_text("Jun Sato")
    expect(page.locator("#member-points")).to_have_text("0")


@pytest.mark.parametrize("page", ["ja-JP"], indirect=True)
def test_japanese_from_the_browser_language_and_korean_from_the_switcher(page, shop):
    page.goto("/checkout")
    expect(page.locator("h1")).to_have_text("このレジにサインイン")
    page.fill("#credential", shop["till"])
    page.click("button[type=submit]")
    expect(page.locator("#code")).to_be_focused()
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    expect(page.locator("#member-points")).to_have_text("150")
    expect(page.locator("#earn")).to_have_text("付与")
    screenshot(page, "checkout-member-ja")
    assert_accessible(page)
    page.click("a[lang=ko]")
    expect(page.locator("#earn")).to_have_text("적립")
    page.goto("/checkout")  # the choice is remembered
    expect(page.locator("#earn")).to_have_text("적립")


def test_pair_a_till_with_a_code_instead_of_a_key(page, shop, live_server):
    made = shop["client"].post("/api/v1/pairing-codes", json={"store": "Shibuya"}, headers=auth(shop["admin"]))
    code = made.get_json()["code"]
    sign_in(page, code.lower()[:4] + "-" + code.lower()[4:])  # as read aloud and typed on a phone
    expect(page.locator(".brand")).to_contain_text("Shibuya")
    # The cursor shows in the code field before the cashier scans: a key pressed while the new page is still
    # settling (the field not yet focused, its script not yet running) lands nowhere.
    expect(page.locator("#code")).to_be_focused()
    scan_by_keyboard(page, shop["member"]["barcode_value"])
    expect(page.locator("#member-name")).to_have_text("Mina Park")
    page.click("text=Sign out")
    sign_in(page, code)  # works once
    expect(page.locator(".status.error")).to_have_text(re.compile("unknown, used or expired"))


def test_a_scan_that_beats_the_script_is_not_lost(page, shop):
    """A USB scanner can fire before checkout.js has loaded: the form then submits itself as GET ?code=..."""
    signed_in(page, shop)
    page.goto("/checkout?lang=ja&code=" + shop["member"]["barcode_value"])
    expect(page.locator("#member-name")).to_have_text("Mina Park")
    assert "code=" not in page.url and "lang=ja" in page.url


def test_the_pairing_link_signs_the_till_in(page, shop):
    made = shop["client"].post("/api/v1/pairing-codes", json={}, headers=auth(shop["admin"])).get_json()
    page.goto(made["pair_url"])
    expect(page.locator("#code")).to_be_visible()
    assert "pair=" not in page.url


def test_without_a_secure_origin_the_page_explains_the_camera(page, shop):
    signed_in(page, shop)
    page.add_init_script("Object.defineProperty(window, 'isSecureContext', {value: false})")
    page.reload()
    page.click("#camera-button")
    expect(page.locator("#camera-note")).to_contain_text("open this page over https (or on localhost)")
