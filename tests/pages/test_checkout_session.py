"""The checkout page's sign-in, session cookie, CSRF rules and pairing codes, over HTTP (no browser)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from app import create_app
from app.config import load_config
from app.models import ApiKey, PairingCode, utcnow
from app.pages.catalogue import STRINGS
from app.services import services
from passes.strings import LOCALES
from tests.factories import (
    assert_problem,
    auth,
    make_api_key,
    make_member,
    make_merchant,
    make_program,
    revoke_api_key,
)


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))[1]


def boot_of(page) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="boot">(.*?)</script>',
                                page.get_data(as_text=True))[1])


def sign_in(client, credential: str):
    return client.post("/checkout/sign-in", data={"csrf_token": csrf_of(client.get("/checkout")),
                                                  "credential": credential})


@pytest.fixture
def till(app, client):
    """A signed-in test client, its CSRF token, and the merchant's admin key and member."""
    merchant_id, admin = make_merchant(app)
    program = make_program(client, admin)
    member = make_member(client, admin, program["id"], points=100)
    key = make_api_key(app, merchant_id, "pos")
    assert sign_in(client, key).status_code == 303
    return {"client": client, "csrf": boot_of(client.get("/checkout"))["csrf"], "admin": admin, "key": key,
            "member": member, "program": program, "merchant_id": merchant_id}


def lookup(till, **headers):
    return till["client"].post("/api/v1/checkout/lookup", json={"barcode": till["member"]["barcode_value"]},
                               headers=headers)


def test_the_session_cookie_is_httponly_strict_and_secure_on_https(till):
    cookie = till["client"].get("/checkout").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    assert till["key"] not in cookie and till["key"] not in till["client"].get("/checkout").get_data(as_text=True)


def test_the_api_takes_the_cookie_only_with_the_matching_csrf_header(till):
    assert_problem(lookup(till), 401)
    assert_problem(lookup(till, **{"X-CSRF-Token": "forged"}), 401)
    assert_problem(lookup(till, **{"X-CSRF-Token": "é"}), 401)  # not a 500: compared as bytes
    answer = lookup(till, **{"X-CSRF-Token": till["csrf"]})
    assert answer.status_code == 200 and answer.get_json()["id"] == till["member"]["id"]


def test_a_till_session_has_the_rights_of_a_pos_key_only(till):
    response = till["client"].post("/api/v1/programs", json={"name": "Not from a till"},
                                   headers={"X-CSRF-Token": till["csrf"]})
    assert_problem(response, 403)


def test_a_form_without_the_csrf_token_signs_nothing_in(app, client):
    merchant_id, _ = make_merchant(app)
    key = make_api_key(app, merchant_id, "pos")
    client.get("/checkout")
    refused = client.post("/checkout/sign-in", data={"credential": key})
    assert refused.status_code == 400 and "Please try again" in refused.get_data(as_text=True)
    assert 'id="credential"' in client.get("/checkout").get_data(as_text=True)  # still signed out


def test_an_admin_key_or_an_unknown_key_is_refused_with_a_sentence(app, client):
    _, admin = make_merchant(app)
    refused = sign_in(client, admin)
    assert refused.status_code == 401 and "This is an admin key" in refused.get_data(as_text=True)
    refused = sign_in(client, "pp_pos_not-a-real-key")
    assert refused.status_code == 401 and "unknown or revoked" in refused.get_data(as_text=True)


def test_revoking_the_key_signs_the_till_out(app, till):
    revoke_api_key(app, till["key"])
    assert_problem(lookup(till, **{"X-CSRF-Token": till["csrf"]}), 401)
    assert 'id="credential"' in till["client"].get("/checkout").get_data(as_text=True)


def test_sign_out_ends_the_session_and_needs_the_csrf_token(till):
    client = till["client"]
    assert client.post("/checkout/sign-out", data={}).status_code == 400
    assert lookup(till, **{"X-CSRF-Token": till["csrf"]}).status_code == 200
    assert client.post("/checkout/sign-out", data={"csrf_token": till["csrf"]}).status_code == 303
    assert_problem(lookup(till, **{"X-CSRF-Token": till["csrf"]}), 401)


def test_a_pairing_code_makes_a_pos_key_for_its_store_and_works_once(app, client):
    merchant_id, admin = make_merchant(app)
    made = client.post("/api/v1/pairing-codes", json={"store": "Gangnam"}, headers=auth(admin))
    assert made.status_code == 201
    body = made.get_json()
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{8}", body["code"]) and body["qr_svg"].startswith("<svg")
    assert body["pair_url"].endswith(f"/checkout#pair={body['code']}")
    assert sign_in(client, f" {body['code'][:4].lower()}-{body['code'][4:]} ").status_code == 303
    assert "Gangnam" in client.get("/checkout").get_data(as_text=True)
    with app.app_context():
        session = services(app).sessions()
        keys = session.query(ApiKey).filter_by(merchant_id=merchant_id, scope="pos").all()
        session.close()
    assert [key.store for key in keys] == ["Gangnam"]
    other = app.test_client()
    refused = sign_in(other, body["code"])
    assert refused.status_code == 401 and "unknown, used or expired" in refused.get_data(as_text=True)


def test_an_expired_pairing_code_is_refused(app, client):
    merchant_id, admin = make_merchant(app)
    code = client.post("/api/v1/pairing-codes", json={"ttl_seconds": 60}, headers=auth(admin)).get_json()["code"]
    with app.app_context(), services(app).sessions() as session:
        session.execute(update(PairingCode).where(PairingCode.merchant_id == merchant_id)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert sign_in(client, code).status_code == 401


def test_only_an_admin_key_makes_pairing_codes(app, client):
    merchant_id, _ = make_merchant(app)
    pos = make_api_key(app, merchant_id, "pos")
    assert_problem(client.post("/api/v1/pairing-codes", json={}, headers=auth(pos)), 403)
    assert_problem(client.post("/api/v1/pairing-codes", json={}), 401)


def test_sign_in_is_rate_limited_per_address(test_env):
    app = create_app(load_config({**test_env, "RATE_LIMIT_SIGN_IN": "2/minute"}), testing=True)
    client = app.test_client()
    for _ in range(2):
        assert sign_in(client, "pp_pos_wrong").status_code == 401
    throttled = sign_in(client, "pp_pos_wrong")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert "Too many attempts" in throttled.get_data(as_text=True)
    assert client.get("/checkout").status_code == 200  # the page itself is not limited
    services(app).engine.dispose()


def test_a_till_enrols_a_customer_and_shows_the_card_link_as_a_qr(till):
    client, headers = till["client"], {"X-CSRF-Token": till["csrf"], "Idempotency-Key": "enrol-1"}
    made = client.post("/api/v1/checkout/members", json={"program_id": till["program"]["id"], "name": "Jun Sato"},
                       headers=headers)
    assert made.status_code == 201 and made.get_json()["apple_pass_url"].endswith(".pkpass")
    qr = client.get(f"/checkout/members/{made.get_json()['id']}/card-qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml" and qr.data.startswith(b"<svg")


def test_a_till_cannot_enrol_into_or_show_another_merchants_cards(app, till):
    _, other_admin = make_merchant(app, "Elsewhere")
    client = till["client"]
    other_program = make_program(client, other_admin)
    other_member = make_member(client, other_admin, other_program["id"])
    response = client.post("/api/v1/checkout/members", json={"program_id": other_program["id"], "name": "X"},
                           headers={"X-CSRF-Token": till["csrf"]})
    assert_problem(response, 404)
    assert client.get(f"/checkout/members/{other_member['id']}/card-qr.svg").status_code == 404
    assert app.test_client().get(f"/checkout/members/{till['member']['id']}/card-qr.svg").status_code == 401


def test_the_page_speaks_the_browsers_language(client):
    page = client.get("/checkout", headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"})
    assert '<html lang="ko">' in page.get_data(as_text=True)
    assert "이 계산대 로그인" in page.get_data(as_text=True)
    chosen = client.get("/checkout?lang=ja", headers={"Accept-Language": "ko"})
    assert "このレジにサインイン" in chosen.get_data(as_text=True)
    assert "このレジにサインイン" in client.get("/checkout", headers={"Accept-Language": "ko"}).get_data(as_text=True)


def test_every_string_of_the_catalogue_is_in_every_language():
    missing = [(key, locale) for key, texts in STRINGS.items() for locale in LOCALES if not texts.get(locale)]
    assert missing == []
    placeholders = {key: {re.findall(r"{\w+}", text).__len__() for text in texts.values()}
                    for key, texts in STRINGS.items()}
    assert all(len(counts) == 1 for counts in placeholders.values()), placeholders
