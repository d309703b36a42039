"""The customer's pages in a real Chromium: enrolling on an iPhone, an Android phone and a computer, the signed
pass behind the Apple badge, Japanese and Korean pages, the member page opened from a lost card's magic link,
and the poster; axe-core checks each page."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import zipfile

import pytest
from playwright.sync_api import expect

from app.domain.member_links import MEMBER_LINK_MAIL
from app.domain.outbox import due_event_ids
from app.services import services
from tests.factories import earn, make_member, make_merchant, make_program, make_reward
from tests.pages.axe import assert_accessible
from tests.pages.conftest import PHONE, screenshot
from workers.jobs import deliver_event

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.4 Mobile/15E148 Safari/604.1")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile "
           "Safari/537.36")
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"

# An image counts once it has loaded: decode() waits for it (visible is not loaded), and fails if it cannot load
LOADED = "img => img.decode().then(() => img.naturalWidth > 0)"


@pytest.fixture(scope="module")
def shop(live_server):
    app, client = live_server.app, live_server.app.test_client()
    _, admin = make_merchant(app)
    program = make_program(client, admin, name="Kissa Hoshi", branding={"background_color": "#2b1d14"})
    make_reward(client, admin, program["id"], "Free coffee", 100)
    make_reward(client, admin, program["id"], "Cheesecake", 400)
    return {"app": app, "client": client, "admin": admin, "program": program, "slug": program["slug"]}


@pytest.fixture
def visitor(browser, live_server):
    """Open a fresh browser context as a given device (phone-sized unless `desktop`), closed after the test."""
    contexts = []

    def open_page(user_agent: str, locale: str = "en-US", desktop: bool = False):
        size = {"viewport": {"width": 1280, "height": 860}} if desktop else PHONE
        context = browser.new_context(**size, user_agent=user_agent, locale=locale, base_url=live_server.url)
        context.set_default_timeout(5000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def fill_and_join(page, slug: str, name: str, email: str = "") -> None:
    page.goto(f"/join/{slug}")
    page.fill("#name", name)
    if email:
        page.fill("#email", email)
    page.check("#consent")
    page.click("#join-form button[type=submit]")
    expect(page.locator("h1")).to_contain_text(name)


def brands_in_order(page) -> list[str]:
    return page.locator("#wallet-buttons a").evaluate_all("links => links.map(link => link.dataset.brand)")


def test_enroll_on_an_iphone_apple_first_and_its_pass_is_signed(visitor, shop, cert_chain, tmp_path):
    page = visitor(IPHONE)
    page.goto(f"/join/{shop['slug']}")
    assert_accessible(page)
    screenshot(page, "join-phone")
    page.click("#join-form button[type=submit]")  # no consent, no name: refused, saying why
    expect(page.locator("#join-errors")).to_contain_text("tick the box")
    fill_and_join(page, shop["slug"], "Aiko Tanaka")
    assert brands_in_order(page) == ["apple"]  # Google Wallet is not configured here: no Google badge at all
    expect(page.locator("#handoff")).to_have_count(0)
    badge = page.locator("#add-to-apple img")
    expect(badge).to_have_attribute("alt", "Add to Apple Wallet")
    assert badge.evaluate(LOADED) and badge.bounding_box()["height"] >= 44
    assert_accessible(page)
    screenshot(page, "join-phone-card")
    download = page.request.get(page.locator("#add-to-apple").get_attribute("href"))
    assert download.ok and download.headers["content-type"] == "application/vnd.apple.pkpass"
    archive = zipfile.ZipFile(io.BytesIO(download.body()))
    assert {"pass.json", "manifest.json", "signature"} <= set(archive.namelist())
    archive.extractall(tmp_path)
    verified = subprocess.run(["openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in",
                               tmp_path / "signature", "-content", tmp_path / "manifest.json", "-CAfile",
                               cert_chain["root_ca"], "-purpose", "any", "-out", "/dev/null"], capture_output=True)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(archive.read("pass.json"))["storeCard"]


def test_on_android_without_google_wallet_configured_there_is_no_google_button(visitor, shop):
    page = visitor(ANDROID)
    fill_and_join(page, shop["slug"], "Min-jun Kim")
    assert brands_in_order(page) == ["apple"]
    expect(page.locator("#add-to-google")).to_have_count(0)


def test_a_desktop_visitor_gets_a_qr_code_to_carry_on_with_the_phone(visitor, shop):
    page = visitor(DESKTOP, desktop=True)
    fill_and_join(page, shop["slug"], "Desk Worker")
    qr = page.locator("#handoff img.qr")
    expect(qr).to_be_visible()
    assert qr.evaluate(LOADED)
    assert_accessible(page)
    screenshot(page, "join-desktop-handoff")
    token = re.search(r"/cards/([^/.]+)\.pkpass", page.locator("#add-to-apple").get_attribute("href"))[1]
    phone = visitor(IPHONE)  # what the phone opens after scanning the code
    phone.goto(f"/cards/{token}")
    assert brands_in_order(phone) == ["apple"]


@pytest.mark.parametrize("locale, heading, submit", [("ja-JP", "Kissa Hoshiに入会", "カードを受け取る"),
                                                     ("ko-KR", "Kissa Hoshi 가입", "카드 받기")])
def test_the_join_page_speaks_japanese_and_korean(visitor, shop, locale, heading, submit):
    page = visitor(IPHONE, locale=locale)
    page.goto(f"/join/{shop['slug']}")
    expect(page.locator("h1")).to_have_text(heading)
    expect(page.locator("#join-form button[type=submit]")).to_have_text(submit)
    assert page.locator("html").get_attribute("lang") == locale[:2]
    assert_accessible(page)
    screenshot(page, f"join-{locale[:2]}")


def test_the_member_page_from_a_lost_card_magic_link(visitor, shop, caplog):
    member = make_member(shop["client"], shop["admin"], shop["program"]["id"], name="Hana Sato",
                         email="hana@example.com", points=180)
    earn(shop["client"], shop["admin"], member["id"], points=60)
    page = visitor(IPHONE)
    page.goto(f"/join/{shop['slug']}")
    page.click("text=Lost your card?")
    page.fill("#email", "hana@example.com")
    page.click("#lost-form button[type=submit]")
    expect(page.locator("#lost-sent")).to_contain_text("a link is on its way")
    link = re.search(r"/member/link/\S+", mailed_texts(shop["app"], caplog)[-1])[0]
    page.goto(link)
    page.click("#link-form button[type=submit]")
    expect(page.locator("#member-name")).to_have_text("Hana Sato")
    expect(page.locator("#member-points")).to_have_text("240")
    expect(page.locator("#affordable-rewards")).to_contain_text("Free coffee")
    expect(page.locator("#history li")).to_have_count(2)
    expect(page.locator("#referral-link")).to_have_value(re.compile(rf"/join/{shop['slug']}\?ref=[A-Z0-9]{{8}}$"))
    assert page.evaluate("document.cookie") == ""  # HttpOnly
    assert brands_in_order(page) == ["apple"]
    assert_accessible(page)
    screenshot(page, "member-page")
    page.emulate_media(color_scheme="dark")
    assert_accessible(page)  # contrast holds in dark mode too
    screenshot(page, "member-page-dark")
    page.emulate_media(color_scheme="light")
    page.click("#copy")
    expect(page.locator("#share-note")).to_have_text("Link copied.")
    page.goto(link)
    expect(page.locator("#link-invalid")).to_be_visible()  # the link worked once


def test_the_poster_prints_the_name_a_qr_code_and_the_call_to_action(visitor, shop):
    page = visitor(DESKTOP, desktop=True)
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    response = page.goto(f"/join/{shop['slug']}/poster")
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert "Kissa Hoshi" in page.content() and "Scan to join" in page.content()
    screenshot(page, "join-poster")


def mailed_texts(app, caplog) -> list[str]:
    """Deliver the queued lost-card mails (no SMTP_URL: they are written to the log) and read them back."""
    with app.app_context(), services(app).sessions() as session:
        ids = due_event_ids(session, kind=MEMBER_LINK_MAIL)
    with caplog.at_level(logging.INFO, logger="app.mail"):
        for event_id in ids:
            assert deliver_event(app, event_id) == "delivered"
    return [record.getMessage() for record in caplog.records if record.name == "app.mail"]
