import base64
import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from passes.storecard import Branding, CardNotice, Goal, StoreCard, store_card_json
from passes.strings import TRANSLATIONS, encode_strings, pass_strings, read_strings

FIELD_GROUPS = (
    "headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields",
)


def make_card(**overrides) -> StoreCard:
    values = dict(
        pass_type_id="pass.dev.punchpass",
        team_id="ABCDE12345",
        serial_number="0b5f4c1e-serial",
        authentication_token="t" * 32,
        web_service_url="https://loyalty.example/wallet",
        organization_name="Bean There Café",
        description="Bean There loyalty card",
        program_name="Bean Club",
        member_name="Hana Sato",
        points_balance=120,
        tier="Gold",
        next_reward=("Free latte", 30),
        next_tier=("Platinum", 380),
        barcode_value="PP-7XK2-99QF",
        terms='No cash value. "Gold" status lasts 12 months.',
        program_info="Earn 1 point per ¥100.",
    )
    values.update(overrides)
    return StoreCard(**values)


def all_fields(pass_json: dict) -> list[dict]:
    card = pass_json["storeCard"]
    return [field for group in FIELD_GROUPS for field in card.get(group, [])]


def localizable_texts(pass_json: dict) -> set[str]:
    """Labels and change messages are always keys; values are keys when the tables know them."""
    texts = set()
    for field in all_fields(pass_json):
        texts.add(field["label"])
        texts.update([field["changeMessage"]] if "changeMessage" in field else [])
        if field["value"] in TRANSLATIONS["en"]:
            texts.add(field["value"])
    return texts


def p256_public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def test_pass_json_has_apples_required_keys_and_the_store_card_style():
    pass_json = store_card_json(make_card())

    assert pass_json["formatVersion"] == 1
    assert pass_json["passTypeIdentifier"] == "pass.dev.punchpass"
    assert pass_json["teamIdentifier"] == "ABCDE12345"
    assert pass_json["serialNumber"] == "0b5f4c1e-serial"
    assert pass_json["organizationName"] == "Bean There Café"
    assert pass_json["description"] == "Bean There loyalty card"
    styles = {"storeCard", "generic", "coupon", "eventTicket", "boardingPass"}
    assert styles & pass_json.keys() == {"storeCard"}
    json.dumps(pass_json)


def test_store_card_never_has_a_relevant_date_or_legacy_barcode():
    pass_json = store_card_json(make_card())

    assert "relevantDate" not in pass_json
    assert "relevantDates" not in pass_json
    assert "barcode" not in pass_json


def test_every_field_key_is_unique_with_every_option_set():
    card = make_card(nfc_message="member:PP-7XK2", nfc_encryption_public_key=p256_public_key())

    keys = [field["key"] for field in all_fields(store_card_json(card))]

    assert len(keys) == len(set(keys))


def test_colours_are_emitted_as_apple_rgb():
    branding = Branding(background_color="#1e2A44", foreground_color="#FFFFFF",
                        label_color="#000000", logo_text="Bean There")

    pass_json = store_card_json(make_card(branding=branding))

    assert pass_json["backgroundColor"] == "rgb(30, 42, 68)"
    assert pass_json["foregroundColor"] == "rgb(255, 255, 255)"
    assert pass_json["labelColor"] == "rgb(0, 0, 0)"
    assert pass_json["logoText"] == "Bean There"


@pytest.mark.parametrize("colour", ["1E2A44", "#1E2A4", "#GGGGGG", "rgb(1, 2, 3)", ""])
def test_colour_not_in_hex_form_is_rejected_naming_the_field(colour):
    with pytest.raises(ValueError, match="label_color"):
        Branding(label_color=colour)


def test_logo_text_defaults_to_program_name_and_empty_text_is_omitted():
    assert store_card_json(make_card())["logoText"] == "Bean Club"
    assert "logoText" not in store_card_json(make_card(branding=Branding(logo_text="")))


def test_balance_is_the_bare_number_with_a_change_message_key():
    primary = store_card_json(make_card(points_balance=1250))["storeCard"]["primaryFields"]

    assert len(primary) == 1
    balance = primary[0]
    assert balance["key"] == "balance"
    assert balance["value"] == 1250 and type(balance["value"]) is int
    message_key = balance["changeMessage"]
    for locale, table in TRANSLATIONS.items():
        assert "%@" in table[message_key], locale


def test_tier_change_message_has_the_placeholder_in_every_locale():
    fields = {field["key"]: field for field in all_fields(store_card_json(make_card()))}

    assert fields["tier"]["value"] == "Gold"
    for locale, table in TRANSLATIONS.items():
        assert "%@" in table[fields["tier"]["changeMessage"]], locale


def test_every_change_message_on_the_card_has_the_placeholder_in_every_locale():
    fields = all_fields(store_card_json(make_card()))

    messages = [field["changeMessage"] for field in fields if "changeMessage" in field]

    assert messages
    for key in messages:
        for locale, table in TRANSLATIONS.items():
            assert "%@" in table[key], (locale, key)


def test_every_label_and_fixed_text_is_translated_into_japanese_and_korean():
    texts = localizable_texts(store_card_json(make_card()))
    texts |= localizable_texts(store_card_json(make_card(tier=None, next_reward=("Cake", 0))))

    assert {"tier.none", "goal.reached", "how_to_use.text", "updates.text"} <= texts
    for key in texts:
        for locale in ("en", "ja", "ko"):
            assert TRANSLATIONS[locale].get(key), (locale, key)
        assert TRANSLATIONS["ja"][key] != TRANSLATIONS["en"][key], key
        assert TRANSLATIONS["ko"][key] != TRANSLATIONS["en"][key], key


def test_translation_tables_share_one_key_set():
    english_keys = set(TRANSLATIONS["en"])

    for locale, table in TRANSLATIONS.items():
        assert set(table) == english_keys, locale


def test_merchant_texts_are_literal_values():
    values = {field["key"]: field["value"] for field in all_fields(store_card_json(make_card()))}

    assert values["program"] == "Bean Club"
    assert values["next_reward"] == "Free latte"
    assert values["terms"] == 'No cash value. "Gold" status lasts 12 months.'
    assert values["program_info"] == "Earn 1 point per ¥100."
    assert values["member"] == "Hana Sato"


def test_front_shows_at_most_four_details_and_moves_the_tier_goal_to_the_back():
    store_card = store_card_json(make_card())["storeCard"]

    front = store_card["secondaryFields"] + store_card["auxiliaryFields"]
    assert len(front) <= 4
    assert [f["key"] for f in store_card["auxiliaryFields"]] == ["next_reward", "points_to_reward"]
    assert store_card["auxiliaryFields"][1]["value"] == 30
    back_keys = [f["key"] for f in store_card["backFields"]]
    assert {"next_tier", "points_to_tier", "how_to_use", "terms"} <= set(back_keys)


def test_tier_goal_is_on_the_front_when_there_is_no_reward_goal():
    auxiliary = store_card_json(make_card(next_reward=None))["storeCard"]["auxiliaryFields"]

    assert [f["value"] for f in auxiliary] == ["Platinum", 380]


def test_program_without_tiers_shows_no_tier_field():
    card = make_card(tier=None, next_tier=None)

    keys = [field["key"] for field in all_fields(store_card_json(card))]

    assert "tier" not in keys and "next_tier" not in keys


def test_member_below_the_first_tier_shows_the_member_fallback():
    card = make_card(tier=None, next_tier=("Silver", 50))

    secondary = store_card_json(card)["storeCard"]["secondaryFields"]

    assert {"key": "tier", "label": "tier.label", "value": "tier.none",
            "changeMessage": "tier.changed"} in secondary


def test_reached_reward_reads_ready_instead_of_zero_points():
    card = make_card(next_reward=Goal("Free latte", -5))

    auxiliary = store_card_json(card)["storeCard"]["auxiliaryFields"]

    assert auxiliary[1]["value"] == "goal.reached"


@pytest.mark.parametrize(
    "url", ["https://loyalty.example/wallet/v1", "https://loyalty.example/v1/"],
)
def test_web_service_url_ending_in_v1_is_rejected(url):
    with pytest.raises(ValueError, match="/v1"):
        make_card(web_service_url=url)


@pytest.mark.parametrize("token", ["too-short-token", "", None])
def test_authentication_token_under_16_characters_is_rejected(token):
    with pytest.raises(ValueError, match="authentication_token"):
        make_card(authentication_token=token)


def test_card_without_web_service_has_no_url_token_or_updates_text():
    pass_json = store_card_json(make_card(web_service_url=None, authentication_token=None))

    assert "webServiceURL" not in pass_json and "authenticationToken" not in pass_json
    assert "updates" not in [field["key"] for field in all_fields(pass_json)]


def test_web_service_url_and_token_are_emitted_without_trailing_slash():
    pass_json = store_card_json(make_card(web_service_url="https://loyalty.example/wallet/"))

    assert pass_json["webServiceURL"] == "https://loyalty.example/wallet"
    assert pass_json["authenticationToken"] == "t" * 32


@pytest.mark.parametrize(
    ("barcode_format", "passkit_format"),
    [("qr", "PKBarcodeFormatQR"), ("pdf417", "PKBarcodeFormatPDF417"),
     ("aztec", "PKBarcodeFormatAztec"), ("code128", "PKBarcodeFormatCode128")],
)
def test_barcode_formats_map_to_passkit_names(barcode_format, passkit_format):
    pass_json = store_card_json(make_card(barcode_format=barcode_format, barcode_alt_text="7XK2"))

    assert pass_json["barcodes"] == [{
        "format": passkit_format, "message": "PP-7XK2-99QF",
        "messageEncoding": "iso-8859-1", "altText": "7XK2",
    }]


def test_unknown_barcode_format_and_non_latin1_value_are_rejected():
    with pytest.raises(ValueError, match="barcode_format"):
        make_card(barcode_format="datamatrix")
    with pytest.raises(ValueError, match="barcode_value"):
        make_card(barcode_value="会員-1")


def test_nfc_block_only_when_a_message_is_set():
    key = p256_public_key()

    assert "nfc" not in store_card_json(make_card())
    nfc = store_card_json(make_card(nfc_message="PP-7XK2", nfc_encryption_public_key=key))["nfc"]
    assert nfc == {
        "message": "PP-7XK2", "encryptionPublicKey": key, "requiresAuthentication": False,
    }


def test_nfc_message_over_64_bytes_is_rejected():
    with pytest.raises(ValueError, match="64"):
        make_card(nfc_message="é" * 33, nfc_encryption_public_key=p256_public_key())


def test_nfc_key_must_be_a_p256_public_key():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_der = rsa_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    for bad_key in (None, "not base64!", base64.b64encode(rsa_der).decode()):
        with pytest.raises(ValueError, match="nfc_encryption_public_key"):
            make_card(nfc_message="PP-7XK2", nfc_encryption_public_key=bad_key)


def test_card_is_validated_again_when_copied_with_changes():
    with pytest.raises(ValueError, match="/v1"):
        dataclasses.replace(make_card(), web_service_url="https://loyalty.example/v1")


def test_strings_escaping_round_trips():
    table = {'say "hi"': 'back\\slash "quoted"\nnew line\ttab', "ja": "ポイント%@"}

    data = encode_strings(table)

    assert b'\\"quoted\\"' in data and b"\\n" in data and b"\\\\" in data
    assert read_strings(data) == table


def test_pass_strings_files_hold_every_key_in_utf8():
    files = pass_strings(["en", "ja", "ko"])

    assert set(files) == {f"{locale}.lproj/pass.strings" for locale in ("en", "ja", "ko")}
    japanese = read_strings(files["ja.lproj/pass.strings"])
    assert japanese == TRANSLATIONS["ja"]
    assert "ポイント".encode("utf-8") in files["ja.lproj/pass.strings"]
    assert not files["ja.lproj/pass.strings"].startswith(b"\xef\xbb\xbf")


def test_unknown_locale_falls_back_to_english_and_regions_use_their_language():
    assert set(pass_strings(["fr"])) == {"en.lproj/pass.strings"}
    assert set(pass_strings(["ja-JP", "ko_KR"])) == {
        "en.lproj/pass.strings", "ja.lproj/pass.strings", "ko.lproj/pass.strings"}


def test_pass_strings_is_memoised_and_callers_cannot_change_the_cache():
    first = pass_strings(("en", "ja"))
    first["en.lproj/pass.strings"] = b"tampered"

    second = pass_strings(["en", "ja"])

    assert second["en.lproj/pass.strings"] != b"tampered"
    assert second["ja.lproj/pass.strings"] is pass_strings(("en", "ja"))["ja.lproj/pass.strings"]


def test_a_voided_card_says_so_and_a_live_one_carries_no_voided_key():
    assert store_card_json(make_card(voided=True))["voided"] is True
    assert "voided" not in store_card_json(make_card())


def test_feature_notices_go_on_the_back_with_their_change_message_and_link():
    notices = (CardNotice("offer_3", "今月の特典", "ラテ20%オフ", change_message="%@"),
               CardNotice("survey_1", "Tell us", "Two questions & a coffee", link="https://x.test/s?a=1&b=2"))
    back = {field["key"]: field for field in store_card_json(make_card(notices=notices))["storeCard"]["backFields"]}

    assert back["notice_offer_3"]["label"] == "今月の特典" and back["notice_offer_3"]["value"] == "ラテ20%オフ"
    assert back["notice_offer_3"]["changeMessage"] == "%@"
    assert back["notice_survey_1"]["attributedValue"] == (
        '<a href="https://x.test/s?a=1&amp;b=2">Two questions &amp; a coffee</a>')


@pytest.mark.parametrize("notices", [
    tuple(CardNotice(f"n{i}", "L", "T") for i in range(11)),
    (CardNotice("same", "L", "T"), CardNotice("same", "L", "U")),
    (CardNotice("Bad Key", "L", "T"),),
    (CardNotice("empty", "L", ""),),
])
def test_too_many_duplicate_or_empty_notices_are_refused(notices):
    with pytest.raises(ValueError, match="notice"):
        make_card(notices=notices)
