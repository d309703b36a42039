"""Apple's rewards enrollment: the card asks the customer to sign up in Wallet, we answer with a signature."""

import base64
import io
import json
import subprocess
import zipfile

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app import create_app
from app.config import ConfigError, load_config
from app.services import services
from tests.factories import TEST_PASS_TYPE_ID, auth, make_member, make_merchant, make_program


@pytest.fixture(scope="module")
def nfc_key() -> str:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return base64.b64encode(public.public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@pytest.fixture
def enrolling_app(private_env, nfc_key):
    app = create_app(load_config({**private_env, "APPLE_NFC_PUBLIC_KEY": nfc_key, "APPLE_PERSONALIZATION": "on"}),
                     testing=True)
    yield app
    services(app).engine.dispose()


def _card(app):
    client = app.test_client()
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key, terms="Be nice.")["id"], name="Guest")
    pkpass = client.get(f"/api/v1/members/{member['id']}/pass.pkpass", headers=auth(key)).data
    return client, key, member, zipfile.ZipFile(io.BytesIO(pkpass))


def test_card_carries_nfc_token_and_the_sign_up_sheet(enrolling_app, nfc_key):
    _, _, member, archive = _card(enrolling_app)
    pass_json = json.loads(archive.read("pass.json"))
    assert pass_json["nfc"] == {"message": member["barcode_value"], "encryptionPublicKey": nfc_key,
                                "requiresAuthentication": False}
    sheet = json.loads(archive.read("personalization.json"))
    assert sheet["requiredPersonalizationFields"] == ["PKPassPersonalizationFieldName",
                                                      "PKPassPersonalizationFieldEmailAddress"]
    assert sheet["termsAndConditions"] == "Be nice."
    assert "personalizationLogo@2x.png" in archive.namelist()
    assert "personalization.json" in json.loads(archive.read("manifest.json"))


def test_the_nfc_message_and_the_qr_code_are_one_checkout_token(enrolling_app):
    """A VAS reader hands the till the same string as the camera: lookup and holds take it either way."""
    client, key, member, archive = _card(enrolling_app)
    pass_json = json.loads(archive.read("pass.json"))
    tapped, scanned = pass_json["nfc"]["message"], pass_json["barcodes"][0]["message"]
    assert tapped == scanned == member["barcode_value"]
    client.post(f"/api/v1/members/{member['id']}/earn", json={"points": 50}, headers=auth(key, "seed"))
    assert client.post("/api/v1/checkout/lookup", json={"barcode": tapped}, headers=auth(key)).get_json()["id"] == \
        member["id"]
    held = client.post("/api/v1/checkout/holds", json={"barcode": tapped, "points": 20}, headers=auth(key, "tap"))
    assert held.status_code == 201 and held.get_json()["member_id"] == member["id"]


def test_personalize_answers_a_verifiable_signature_and_reissues_the_card(enrolling_app, cert_chain, tmp_path):
    client, key, member, archive = _card(enrolling_app)
    serial = json.loads(archive.read("pass.json"))["serialNumber"]
    response = client.post(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{serial}/personalize", json={
        "personalizationToken": "token-from-apple-123",
        "requiredPersonalizationInfo": {"fullName": "Hana Kim", "emailAddress": "hana@example.com"}})
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    (tmp_path / "sig.der").write_bytes(response.data)
    (tmp_path / "token").write_bytes(b"token-from-apple-123")
    verify = subprocess.run(["openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                             "-content", tmp_path / "token", "-CAfile", cert_chain["root_ca"], "-purpose", "any",
                             "-out", "/dev/null"], capture_output=True)
    assert verify.returncode == 0, verify.stderr
    got = client.get(f"/api/v1/members/{member['id']}", headers=auth(key)).get_json()
    assert (got["name"], got["email"]) == ("Hana Kim", "hana@example.com")
    again = zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/members/{member['id']}/pass.pkpass",
                                                  headers=auth(key)).data))
    assert "personalization.json" not in again.namelist()


def test_malformed_personalize_body_is_400(enrolling_app):
    client, _, _, archive = _card(enrolling_app)
    serial = json.loads(archive.read("pass.json"))["serialNumber"]
    assert client.post(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{serial}/personalize",
                       json={"nope": 1}).status_code == 400


def test_personalization_is_off_by_default(app, client):
    _, key = make_merchant(app)
    member = make_member(client, key, make_program(client, key)["id"])
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/members/{member['id']}/pass.pkpass",
                                                    headers=auth(key)).data))
    assert "personalization.json" not in archive.namelist()
    assert "nfc" not in json.loads(archive.read("pass.json"))
    assert client.post(f"/wallet/v1/passes/{TEST_PASS_TYPE_ID}/{member['serial_number']}/personalize",
                       json={"personalizationToken": "t"}).status_code == 404


def test_personalization_without_an_nfc_key_stops_start_up(test_env):
    with pytest.raises(ConfigError, match="APPLE_PERSONALIZATION"):
        load_config({**test_env, "APPLE_PERSONALIZATION": "on"})


def test_a_malformed_nfc_key_stops_start_up(test_env):
    with pytest.raises(ConfigError, match="APPLE_NFC_PUBLIC_KEY"):
        load_config({**test_env, "APPLE_NFC_PUBLIC_KEY": "bm90IGEga2V5"})


def test_sign_up_logo_fits_apples_150_by_40_box_even_for_a_wide_logo(enrolling_app):
    from PIL import Image

    from tests.factories import make_png
    client = enrolling_app.test_client()
    _, key = make_merchant(enrolling_app)
    program = make_program(client, key)
    upload = client.put(f"/api/v1/programs/{program['id']}/images/logo", headers=auth(key),
                        data={"file": (io.BytesIO(make_png(640, 160)), "wide.png")})
    assert upload.status_code == 200, upload.get_json()
    member = make_member(client, key, program["id"])
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/members/{member['id']}/pass.pkpass",
                                                    headers=auth(key)).data))
    for scale, name in ((1, "personalizationLogo.png"), (2, "personalizationLogo@2x.png"),
                        (3, "personalizationLogo@3x.png")):
        width, height = Image.open(io.BytesIO(archive.read(name))).size
        assert width <= 150 * scale and height <= 40 * scale, (name, width, height)
        assert width == 150 * scale or height == 40 * scale, (name, width, height)  # as large as fits
