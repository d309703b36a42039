"""The customer's pages over HTTP (no browser): program slugs and `enroll_url`, the enrollment form's rules
(consent, CSRF, rate limit), the wallet badges, the poster, lost-card mails that never tell whether an email is
known, magic links (once, 30 minutes) and the member page showing its own member only."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app import create_app
from app.config import load_config
from app.domain.member_links import MEMBER_LINK_MAIL
from app.domain.outbox import due_event_ids
from app.logs import mask_secrets
from app.models import Member, MemberLink, OutboxEvent, utcnow
from app.pages.join import badges_in_order, platform
from app.services import services
from tests.factories import assert_problem, auth, earn, make_member, make_merchant, make_program, make_reward
from tests.fakes.smtp import FakeSMTP
from workers.jobs import deliver_event

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Version/17.4 Mobile/15E148"


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))[1]


def enroll(client, slug: str, **fields):
    form = {"csrf_token": csrf_of(client.get(f"/join/{slug}")), "name": "Aiko Tanaka", "consent": "yes", **fields}
    return client.post(f"/join/{slug}", data={key: value for key, value in form.items() if value is not None})


def members_named(app, name: str) -> int:
    with app.app_context():
        with services(app).sessions() as session:
            return session.scalar(select(func.count()).select_from(Member).where(Member.name == name))


@pytest.fixture
def shop(app, client):
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin, name="Café Bleu")
    return {"admin": admin, "program": program, "slug": program["slug"], "merchant_id": merchant_id}


def mails_sent(app, caplog) -> list[str]:
    """Deliver the queued lost-card mails (SMTP_URL unset in tests: they are logged) and return their texts."""
    with app.app_context(), services(app).sessions() as session:
        ids = due_event_ids(session, kind=MEMBER_LINK_MAIL)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.mail"):
        for event_id in ids:
            assert deliver_event(app, event_id) == "delivered"
    return [record.getMessage() for record in caplog.records if record.name == "app.mail"]


def magic_link(text: str) -> str:
    return re.search(r"https://punchpass\.test(/member/link/\S+)", text)[1]


def open_link(client, path: str, slug: str | None = None):
    """Press "Open my card" (a spent link shows no button: the token then comes from the join page)."""
    page = client.get(path) if slug is None else client.get(f"/join/{slug}")
    return client.post(path, data={"csrf_token": csrf_of(page)})


# slugs and enroll_url

def test_a_program_gets_a_slug_from_its_name_and_an_enroll_url(client, shop):
    assert re.fullmatch(r"cafe-bleu(-[0-9a-f]{6})?", shop["slug"])
    assert shop["program"]["enroll_url"] == f"https://punchpass.test/join/{shop['slug']}"
    fetched = client.get(f"/api/v1/programs/{shop['program']['id']}", headers=auth(shop["admin"])).get_json()
    assert fetched["enroll_url"] == shop["program"]["enroll_url"]


def test_a_name_without_latin_letters_still_gets_a_unique_slug(client, shop):
    first = make_program(client, shop["admin"], name="カフェ")
    second = make_program(client, shop["admin"], name="カフェ")
    assert first["slug"].startswith("program") and second["slug"].startswith("program")
    assert first["slug"] != second["slug"]


def test_a_chosen_slug_is_kept_and_a_taken_one_is_409(client, shop, app):
    chosen = make_program(client, shop["admin"], slug=f"beans-{shop['program']['id']}")
    assert chosen["enroll_url"].endswith(f"/join/beans-{shop['program']['id']}")
    assert_problem(client.post("/api/v1/programs", json={"name": "Copy", "slug": chosen["slug"]},
                               headers=auth(shop["admin"])), 409)
    _, other_admin = make_merchant(app)  # slugs are public: unique across merchants, too
    assert_problem(client.post("/api/v1/programs", json={"name": "Copy", "slug": chosen["slug"]},
                               headers=auth(other_admin)), 409)
    patch = client.patch(f"/api/v1/programs/{shop['program']['id']}", json={"slug": chosen["slug"]},
                         headers=auth(shop["admin"]))
    assert_problem(patch, 409)
    renamed = client.patch(f"/api/v1/programs/{shop['program']['id']}", json={"slug": f"x{chosen['slug']}"},
                           headers=auth(shop["admin"]))
    assert renamed.status_code == 200 and renamed.get_json()["enroll_url"].endswith(f"/join/x{chosen['slug']}")
    assert client.get(f"/join/x{chosen['slug']}").status_code == 200
    assert client.get(f"/join/{shop['slug']}").status_code == 404  # the old address is gone


@pytest.mark.parametrize("slug", ["ab", "Cafe", "café", "-cafe", "cafe-", "ca--fe", "ca fe", "a" * 61])
def test_a_slug_that_is_not_url_safe_is_422_naming_it(client, shop, slug):
    response = client.post("/api/v1/programs", json={"name": "Bad", "slug": slug}, headers=auth(shop["admin"]))
    assert_problem(response, 422)
    assert "slug" in response.get_json()["errors"]


def test_an_unknown_slug_is_a_friendly_404(client):
    response = client.get("/join/no-such-program")
    assert response.status_code == 404 and "no loyalty program at this address" in response.get_data(as_text=True)


# the enrollment form

def test_the_referral_code_is_prefilled_from_the_link(client, shop):
    page = client.get(f"/join/{shop['slug']}?ref=ABCD2345").get_data(as_text=True)
    assert re.search(r'id="referral_code"[^>]*value="ABCD2345"', page, re.S)


def test_enrolling_creates_the_member_and_shows_the_apple_badge(app, client, shop):
    response = enroll(client, shop["slug"], name="Aiko Enrolled", email="aiko@example.com", phone="+81 90 1234 5678")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/join/{shop['slug']}/card")
    page = client.get(f"/join/{shop['slug']}/card", headers={"User-Agent": IPHONE}).get_data(as_text=True)
    assert "Welcome, Aiko Enrolled!" in page
    apple = re.search(r'id="add-to-apple" href="([^"]+)"', page)[1]
    assert apple.startswith("https://punchpass.test/cards/") and apple.endswith(".pkpass")
    assert 'id="add-to-google"' not in page  # Google Wallet is not configured in tests
    assert 'id="handoff"' not in page  # a phone needs no QR code
    with app.app_context(), services(app).sessions() as session:
        member = session.scalar(select(Member).where(Member.name == "Aiko Enrolled"))
        assert (member.email, member.phone, member.program_id) == ("aiko@example.com", "+819012345678",
                                                                   shop["program"]["id"])


@pytest.mark.parametrize("visitor_platform, google_url, expected", [
    ("ios", "https://punchpass.test/google/save/x", ["apple", "google"]),
    ("android", "https://punchpass.test/google/save/x", ["google", "apple"]),
    ("desktop", "https://punchpass.test/google/save/x", ["apple", "google"]),
    ("android", None, ["apple"]),  # Google Wallet not configured: no Google badge on any platform
])
def test_the_visitors_platform_comes_first_and_google_only_when_configured(visitor_platform, google_url, expected):
    badges = badges_in_order("https://punchpass.test/cards/t.pkpass", google_url, visitor_platform)
    assert [badge["brand"] for badge in badges] == expected


def test_the_platform_is_read_from_the_user_agent(app):
    agents = {IPHONE: "ios", IPHONE.replace("iPhone", "iPad"): "ios", "Mozilla/5.0 (Linux; Android 14)": "android",
              "Mozilla/5.0 (Windows NT 10.0; Win64; x64)": "desktop", "": "desktop"}
    for agent, expected in agents.items():
        with app.test_request_context(headers={"User-Agent": agent}):
            assert platform() == expected


def test_a_desktop_visitor_gets_a_qr_code_of_the_card_page(client, shop):
    enroll(client, shop["slug"], name="Desk Top")
    page = client.get(f"/join/{shop['slug']}/card", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert 'id="handoff"' in page.get_data(as_text=True)
    qr = client.get(f"/join/{shop['slug']}/card-qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    apple = re.search(r'id="add-to-apple" href="https://punchpass.test/cards/([^"]+)\.pkpass"',
                      page.get_data(as_text=True))[1]
    handoff = client.get(f"/cards/{apple}", headers={"User-Agent": IPHONE})  # what the phone opens
    assert handoff.status_code == 200 and f"/cards/{apple}.pkpass" in handoff.get_data(as_text=True)


def test_the_card_step_needs_the_enrolled_browser(app, client, shop):
    assert client.get(f"/join/{shop['slug']}/card").status_code == 303
    assert app.test_client().get(f"/join/{shop['slug']}/card-qr.svg").status_code == 404


def test_consent_is_required_and_nobody_is_enrolled_without_it(app, client, shop):
    response = enroll(client, shop["slug"], name="No Consent", consent=None)
    assert response.status_code == 422 and "tick the box" in response.get_data(as_text=True)
    assert members_named(app, "No Consent") == 0


def test_bad_fields_are_named_and_the_form_keeps_what_was_typed(app, client, shop):
    response = enroll(client, shop["slug"], name="Bad Phone", phone="12345", email="not-an-email",
                      referral_code="NOSUCHCODE")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "country code" in page and "does not look right" in page
    assert 'value="Bad Phone"' in page and members_named(app, "Bad Phone") == 0
    unknown_referrer = enroll(client, shop["slug"], name="Bad Referral", referral_code="NOSUCHCODE")
    assert unknown_referrer.status_code == 422 and "referral code is unknown" in unknown_referrer.get_data(True)


def test_a_referral_from_the_link_is_recorded(app, client, shop):
    referrer = make_member(client, shop["admin"], shop["program"]["id"], name="Referrer")
    enroll(client, shop["slug"], name="Referred Friend", referral_code=referrer["referral_code"])
    with app.app_context(), services(app).sessions() as session:
        friend = session.scalar(select(Member).where(Member.name == "Referred Friend"))
        assert friend.referred_by_id == referrer["id"]


def test_a_form_without_the_csrf_token_enrolls_nobody(app, client, shop):
    client.get(f"/join/{shop['slug']}")
    response = client.post(f"/join/{shop['slug']}", data={"name": "Forged", "consent": "yes"})
    assert response.status_code == 400 and members_named(app, "Forged") == 0
    forged = client.post(f"/join/{shop['slug']}", data={"name": "Forged", "consent": "yes", "csrf_token": "x" * 32})
    assert forged.status_code == 400 and members_named(app, "Forged") == 0


def test_enrolling_is_rate_limited_per_address(test_env):
    app = create_app(load_config({**test_env, "RATE_LIMIT_JOIN": "2/minute"}), testing=True)
    try:
        client = app.test_client()
        _, admin = make_merchant(app)
        slug = make_program(client, admin)["slug"]
        assert [enroll(client, slug, name=f"Limited {n}").status_code for n in range(3)] == [303, 303, 429]
        throttled = enroll(client, slug, name="Limited 3")
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
        assert "Too many attempts" in throttled.get_data(as_text=True)
        assert client.get(f"/join/{slug}").status_code == 200  # reading the page is not limited
    finally:
        services(app).engine.dispose()


def test_the_session_cookie_is_httponly_lax_and_secure_on_https(client, shop):
    cookie = client.get(f"/join/{shop['slug']}").headers["Set-Cookie"]
    assert cookie.startswith("punchpass_member=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


# badges and poster

@pytest.mark.parametrize("brand, locale, text", [("apple", "en", "Apple Wallet"), ("apple", "ja", "Apple Walletに追加"),
                                                 ("google", "en", "Add to Google Wallet"),
                                                 ("google", "ko", "Google 월렛에 추가")])
def test_the_wallet_badges_are_drawn_here_in_each_language(client, brand, locale, text):
    response = client.get(f"/badges/{brand}-{locale}.svg")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert text in body and 'fill="#000"' in body and "http" not in body.replace("http://www.w3.org/2000/svg", "")
    assert client.get(f"/badges/{brand}-fr.svg").status_code == 404


def test_the_poster_has_the_name_a_qr_code_and_a_localized_call_to_action(client, shop):
    response = client.get(f"/join/{shop['slug']}/poster?lang=ja")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert 'width="210mm" height="297mm"' in body and "Café Bleu" in body
    assert "読み取って入会" in body and f"https://punchpass.test/join/{shop['slug']}" in body
    assert re.search(r'<path d="(M\d+,\d+h1v1h-1z){100,}"', body)  # the QR code's modules


# lost card, magic links, the member page

def test_a_lost_card_request_answers_the_same_for_known_and_unknown_emails(app, client, shop, caplog):
    make_member(client, shop["admin"], shop["program"]["id"], name="Known Mail", email="known@example.com")
    answers = []
    for email in ("KNOWN@example.com", "stranger@example.com"):
        page = client.get(f"/join/{shop['slug']}/lost")
        response = client.post(f"/join/{shop['slug']}/lost", data={"csrf_token": csrf_of(page), "email": email})
        answers.append((response.status_code, re.sub(r'value="[^"]+"', "", response.get_data(as_text=True))))
    assert answers[0] == answers[1] and answers[0][0] == 200
    mails = mails_sent(app, caplog)
    assert len(mails) == 1 and "known@example.com" in mails[0] and "/member/link/" in mails[0]


def test_a_magic_link_opens_the_member_page_once(app, client, shop, caplog):
    member = make_member(client, shop["admin"], shop["program"]["id"], name="Lost Card", email="lost@example.com")
    request_link(client, shop, "lost@example.com")
    path = magic_link(mails_sent(app, caplog)[0])
    browser = app.test_client()
    assert browser.get(path).status_code == 200  # a mail scanner's GET spends nothing
    opened = open_link(browser, path)
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/member")
    page = browser.get("/member").get_data(as_text=True)
    assert "Lost Card" in page and f"?ref={member['referral_code']}" in page
    cookie = opened.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert app.test_client().get(path).status_code == 410
    assert open_link(app.test_client(), path, shop["slug"]).status_code == 410  # used: no second browser gets in


def test_a_magic_link_expires_after_30_minutes(app, client, shop, caplog):
    make_member(client, shop["admin"], shop["program"]["id"], name="Slow Reader", email="slow@example.com")
    request_link(client, shop, "slow@example.com")
    path = magic_link(mails_sent(app, caplog)[0])
    with app.app_context(), services(app).sessions() as session:
        link = session.scalars(select(MemberLink).order_by(MemberLink.id.desc())).first()
        assert timedelta(minutes=29) < link.expires_at - link.created_at <= timedelta(minutes=30)
        session.execute(update(MemberLink).where(MemberLink.id == link.id).values(expires_at=utcnow()))
        session.commit()
    assert app.test_client().get(path).status_code == 410
    assert open_link(app.test_client(), path, shop["slug"]).status_code == 410


def test_the_member_page_shows_the_session_member_and_nobody_else(app, client, shop, caplog):
    make_reward(client, shop["admin"], shop["program"]["id"], "Free coffee", 100)
    make_reward(client, shop["admin"], shop["program"]["id"], "Cake", 900)
    mine = make_member(client, shop["admin"], shop["program"]["id"], points=150, name="Mine Only",
                       email="mine@example.com")
    make_member(client, shop["admin"], shop["program"]["id"], points=700, name="Someone Else")
    request_link(client, shop, "mine@example.com")
    browser = app.test_client()
    open_link(browser, magic_link(mails_sent(app, caplog)[0]))
    page = browser.get("/member").get_data(as_text=True)
    assert "Mine Only" in page and "Someone Else" not in page
    affordable = re.search(r'id="affordable-rewards">(.*?)</ul>', page, re.S)[1]
    assert 'id="member-points">150<' in page and "Free coffee" in affordable and "Cake" not in affordable
    assert "750 more points for Cake" in page
    assert "350 more points to Gold" in page and 'id="add-to-apple"' in page
    assert "Someone Else" not in browser.get("/member?member_id=2&before=999999999").get_data(as_text=True)
    assert app.test_client().get("/member").status_code == 401  # no session, no member
    assert mine["name"] == "Mine Only"


def test_the_history_is_newest_first_and_paginated(app, client, shop, caplog):
    member = make_member(client, shop["admin"], shop["program"]["id"], name="Regular", email="regular@example.com")
    for points in range(1, 23):
        earn(client, shop["admin"], member["id"], points=points)
    request_link(client, shop, "regular@example.com")
    browser = app.test_client()
    open_link(browser, magic_link(mails_sent(app, caplog)[0]))
    first = browser.get("/member").get_data(as_text=True)
    assert re.findall(r'class="delta plus">\+(\d+)<', first)[:3] == ["22", "21", "20"]
    older = re.search(r'href="(/member\?before=\d+)" id="older"', first)[1]
    second = browser.get(older).get_data(as_text=True)
    assert re.findall(r'class="delta plus">\+(\d+)<', second) == ["2", "1"] and 'id="older"' not in second


def test_a_new_card_link_ends_the_member_sessions_opened_with_the_old_one(app, client, shop, caplog):
    from app.domain.members import rotate_card_link
    member = make_member(client, shop["admin"], shop["program"]["id"], name="Leaked", email="leaked@example.com")
    request_link(client, shop, "leaked@example.com")
    browser = app.test_client()
    open_link(browser, magic_link(mails_sent(app, caplog)[0]))
    assert browser.get("/member").status_code == 200
    with app.app_context(), services(app).sessions() as session:
        rotate_card_link(session, member["id"])
        session.commit()
    assert browser.get("/member").status_code == 401


def test_signing_out_ends_the_member_session(app, client, shop, caplog):
    make_member(client, shop["admin"], shop["program"]["id"], name="Leaving", email="leaving@example.com")
    request_link(client, shop, "leaving@example.com")
    browser = app.test_client()
    open_link(browser, magic_link(mails_sent(app, caplog)[0]))
    page = browser.get("/member")
    browser.post("/member/sign-out", data={"csrf_token": csrf_of(page)})
    assert browser.get("/member").status_code == 401


def test_magic_links_are_masked_in_access_logs():
    masked = mask_secrets('"POST /member/link/r2LyJPwnBC3A7RJy HTTP/1.1" 303')
    assert masked == '"POST /member/link/r2Ly*** HTTP/1.1" 303'


def test_the_mail_goes_through_smtp_when_configured(test_env):
    with FakeSMTP(username="shop", password="p@ss") as smtp:
        env = {**test_env, "SMTP_URL": smtp.url.replace("smtp://", "smtp://shop:p%40ss@"),
               "MAIL_FROM": "Café Bleu <loyalty@example.com>"}
        app = create_app(load_config(env), testing=True)
        try:
            client = app.test_client()
            _, admin = make_merchant(app)
            program = make_program(client, admin, name="Mail Test")
            make_member(client, admin, program["id"], name="Smtp Member", email="smtp@example.com", locale="ko")
            request_link(client, {"slug": program["slug"]}, "smtp@example.com", lang="ko")
            with app.app_context(), services(app).sessions() as session:
                ids = session.scalars(select(OutboxEvent.id).where(OutboxEvent.kind == MEMBER_LINK_MAIL,
                                                                    OutboxEvent.program_id == program["id"])).all()
            assert [deliver_event(app, event_id) for event_id in ids] == ["delivered"]
        finally:
            services(app).engine.dispose()
    assert smtp.logins == [("shop", "p@ss")]
    [message] = smtp.messages
    assert message["To"] == "smtp@example.com" and "loyalty@example.com" in message["From"]
    assert message["Subject"] == "Mail Test 카드" and "/member/link/" in message.get_content()


def request_link(client, shop, email: str, lang: str = "en") -> None:
    page = client.get(f"/join/{shop['slug']}/lost?lang={lang}")
    response = client.post(f"/join/{shop['slug']}/lost?lang={lang}", data={"csrf_token": csrf_of(page),
                                                                            "email": email})
    assert response.status_code == 200
