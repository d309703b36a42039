"""Google Wallet JSON and the save link, checked against Google's published schema and by verifying the JWT."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from passes.google import (
    MAX_SAFE_URL_LENGTH,
    Link,
    LoyaltyCard,
    LoyaltyProgram,
    ServiceAccount,
    ServiceAccountError,
    changed_fields,
    loyalty_class_json,
    loyalty_object_json,
    resource_id,
    save_jwt,
    save_url,
)
from passes.google_callbacks import CallbackError, parse_root_keys, verify_callback
from passes.storecard import CardNotice
from tests.fakes.google import CallbackSigner, callback_message, make_service_account
from tests.fakes.walletobjects_schema import schema_errors

ISSUER = "3388000000012345678"


@pytest.fixture(scope="module")
def account_info():
    return make_service_account("https://127.0.0.1:1/token")


def program(**overrides) -> LoyaltyProgram:
    values = dict(issuer_id=ISSUER, class_suffix="punchpass-program-7", issuer_name="Bean There Café",
                  program_name="Bean Club", logo_url="https://punchpass.test/google/programs/7/logo.png",
                  background_color="#1f2937", locales=("ja", "en", "ko"),
                  hero_image_url="https://punchpass.test/google/programs/7/hero.png", rewards_tier="Member",
                  program_info="Earn a point per yen.", terms="No cash value.",
                  links=(Link("https://beanthere.example", "Our shops"),),
                  merchant_locations=((35.6595, 139.7005),), smart_tap_issuers=(ISSUER,),
                  callback_url="https://punchpass.test/google/callbacks")
    return LoyaltyProgram(**{**values, **overrides})


def card(**overrides) -> LoyaltyCard:
    values = dict(issuer_id=ISSUER, serial_number="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                  class_id=f"{ISSUER}.punchpass-program-7", account_id="K7XQ2MPA", account_name="Hana Sato",
                  points=120, barcode_value="Zm9vYmFyYmF6cXV4cXV1eA", locale="ja", locales=("ja", "en", "ko"),
                  tier="Gold", has_tiers=True)
    return LoyaltyCard(**{**values, **overrides})


def test_every_class_field_fits_googles_schema_and_is_sent_under_review():
    body = loyalty_class_json(program())
    assert schema_errors(body, "LoyaltyClass") == []
    assert body["reviewStatus"] == "UNDER_REVIEW" and body["id"] == f"{ISSUER}.punchpass-program-7"
    assert body["enableSmartTap"] is True and body["redemptionIssuers"] == [ISSUER]
    assert body["merchantLocations"] == [{"latitude": 35.6595, "longitude": 139.7005}]
    assert body["hexBackgroundColor"] == "#1F2937" and body["rewardsTier"] == "Member"
    assert "locations" not in body  # deprecated: merchantLocations replaces it


def test_class_texts_are_translated_into_every_program_locale():
    label = loyalty_class_json(program())["textModulesData"][0]["localizedHeader"]
    assert label["defaultValue"] == {"language": "ja", "value": "ご利用方法"}
    assert {t["language"]: t["value"] for t in label["translatedValues"]} == {"en": "How to use", "ko": "이용 방법"}


def test_a_minimal_class_fits_the_schema_too():
    body = loyalty_class_json(program(hero_image_url=None, rewards_tier=None, program_info=None, terms=None, links=(),
                                      merchant_locations=(), smart_tap_issuers=(), callback_url=None, locales=()))
    assert schema_errors(body, "LoyaltyClass") == []
    assert "enableSmartTap" not in body and "heroImage" not in body


def test_the_object_carries_the_available_points_tier_and_checkout_token():
    body = loyalty_object_json(card())
    assert schema_errors(body, "LoyaltyObject") == []
    assert body["id"] == f"{ISSUER}.0f1e2d3c4b5a69788796a5b4c3d2e1f0" and body["state"] == "ACTIVE"
    assert body["loyaltyPoints"]["balance"] == {"int": 120}
    assert body["secondaryLoyaltyPoints"]["balance"] == {"string": "Gold"}
    assert body["barcode"] == {"type": "QR_CODE", "value": "Zm9vYmFyYmF6cXV4cXV1eA"}
    assert body["smartTapRedemptionValue"] == "Zm9vYmFyYmF6cXV4cXV1eA"
    assert "rewardsTier" not in body  # exists only on the class


def test_a_member_without_a_tier_reads_member_in_their_language_and_a_deleted_one_is_inactive():
    body = loyalty_object_json(card(tier=None, locale="ko", active=False, barcode_format="pdf417"))
    assert schema_errors(body, "LoyaltyObject") == []
    assert body["secondaryLoyaltyPoints"]["balance"] == {"string": "일반"} and body["state"] == "INACTIVE"
    assert body["barcode"]["type"] == "PDF_417"


def test_the_validator_refuses_unknown_fields_wrong_types_and_deprecated_values():
    body = {**loyalty_object_json(card()), "colour": "red", "state": "active", "locations": []}
    body["loyaltyPoints"] = {"balance": {"int": "120"}}
    errors = schema_errors(body, "LoyaltyObject")
    assert any("colour: unknown field" in e for e in errors)
    assert any("'active' is deprecated" in e for e in errors)
    assert any("locations: deprecated field" in e for e in errors)
    assert any("balance.int: expected an integer" in e for e in errors)


def test_only_changed_fields_are_patched():
    before = loyalty_object_json(card())
    after = loyalty_object_json(card(points=150))
    assert changed_fields(before, after) == {"loyaltyPoints": after["loyaltyPoints"]}
    assert changed_fields(before, before) == {}
    assert changed_fields(None, after) == after


def test_ids_take_only_what_google_allows():
    assert resource_id(ISSUER, "a.b_c-1") == f"{ISSUER}.a.b_c-1"
    with pytest.raises(ValueError):
        resource_id(ISSUER, "has space")
    with pytest.raises(ValueError):
        resource_id("33x", "ok")


def test_a_skinny_save_link_verifies_with_the_service_account_key_and_stays_short(account_info):
    account = ServiceAccount.from_info(account_info)
    now = int(time.time())
    token = save_jwt(account, origins=["https://punchpass.test"], issued_at=now,
                     objects=[{"id": card().object_id}])
    public_key = serialization.load_pem_private_key(account_info["private_key"].encode(), None).public_key()
    claims = jwt.decode(token, public_key, algorithms=["RS256"], audience="google")
    assert jwt.get_unverified_header(token)["kid"] == "test-key-1"
    assert claims["iss"] == account_info["client_email"] and claims["typ"] == "savetowallet"
    assert claims["iat"] == now and claims["origins"] == ["https://punchpass.test"] and "exp" not in claims
    assert claims["payload"] == {"loyaltyObjects": [{"id": card().object_id}]}
    assert len(save_url(token)) < 1000


def test_a_fat_save_link_carries_the_whole_object_under_the_safe_length(account_info):
    account = ServiceAccount.from_info(account_info)
    token = save_jwt(account, origins=[], issued_at=1, objects=[loyalty_object_json(card())])
    assert len(save_url(token)) < MAX_SAFE_URL_LENGTH


def test_a_broken_key_file_is_named_for_what_is_wrong(account_info, tmp_path):
    with pytest.raises(ServiceAccountError, match="private_key"):
        ServiceAccount.from_info({**account_info, "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n"})
    with pytest.raises(ServiceAccountError, match="service_account"):
        ServiceAccount.from_info({**account_info, "type": "authorized_user"})
    (tmp_path / "key.json").write_text("{not json")
    with pytest.raises(ServiceAccountError, match="not JSON"):
        ServiceAccount.from_file(tmp_path / "key.json")
    with pytest.raises(ServiceAccountError, match="cannot read"):
        ServiceAccount.from_file(tmp_path / "missing.json")


def test_a_callback_signed_by_googles_keys_verifies():
    google = CallbackSigner()
    message = callback_message(f"{ISSUER}.c", f"{ISSUER}.o", "save", nonce="n-1")
    body = google.callback(ISSUER, message)
    verified = verify_callback(body, parse_root_keys(google.keys_document()), recipient_id=ISSUER,
                               now_ms=int(time.time() * 1000))
    assert verified == message


@pytest.mark.parametrize("tamper", ["message", "recipient", "root", "expired", "protocol"])
def test_a_tampered_or_stale_callback_is_refused(tamper):
    google, now_ms = CallbackSigner(), int(time.time() * 1000)
    body = google.callback(ISSUER, callback_message(f"{ISSUER}.c", f"{ISSUER}.o"))
    keys, recipient = parse_root_keys(google.keys_document()), ISSUER
    if tamper == "message":
        body["signedMessage"] = body["signedMessage"].replace('"save"', '"del"')
    elif tamper == "recipient":
        recipient = "999"
    elif tamper == "root":
        keys = parse_root_keys(CallbackSigner().keys_document())
    elif tamper == "expired":
        now_ms += 2 * 86_400_000
    else:
        body["protocolVersion"] = "ECv2"
    with pytest.raises(CallbackError):
        verify_callback(body, keys, recipient_id=recipient, now_ms=now_ms)


def test_feature_notices_become_text_modules_and_links_and_an_ended_one_is_cleared():
    notices = (CardNotice("offer_3", "今月の特典", "ラテ20%オフ"),
               CardNotice("survey_1", "Tell us", "Two questions", link="https://punchpass.test/s/abc"))
    body = loyalty_object_json(card(notices=notices))
    assert schema_errors(body, "LoyaltyObject") == []
    assert body["textModulesData"] == [{"id": "offer_3", "header": "今月の特典", "body": "ラテ20%オフ"},
                                       {"id": "survey_1", "header": "Tell us", "body": "Two questions"}]
    assert body["linksModuleData"]["uris"] == [{"id": "survey_1", "uri": "https://punchpass.test/s/abc",
                                                "description": "Tell us"}]

    ended = changed_fields(body, loyalty_object_json(card(notices=notices[1:])))
    assert ended == {"textModulesData": [{"id": "survey_1", "header": "Tell us", "body": "Two questions"}]}
    assert changed_fields(body, loyalty_object_json(card())) == {"textModulesData": [], "linksModuleData": {"uris": []}}


def test_a_stamp_card_shows_its_count_and_open_vouchers_and_a_used_voucher_is_cleared():
    body = loyalty_object_json(card(stamps=(3, 10), vouchers=("Free coffee", "Free cake"), tier=None, has_tiers=False))
    assert schema_errors(body, "LoyaltyObject") == []
    assert body["loyaltyPoints"]["balance"] == {"string": "3/10"} and body["loyaltyPoints"]["label"] == "スタンプ"
    assert "secondaryLoyaltyPoints" not in body
    vouchers = body["textModulesData"][0]
    assert (vouchers["id"], vouchers["header"], vouchers["body"]) == ("vouchers", "お持ちのクーポン",
                                                                      "Free coffee\nFree cake")
    assert changed_fields(body, loyalty_object_json(card(stamps=(3, 10), tier=None, has_tiers=False))) == {
        "textModulesData": []}
