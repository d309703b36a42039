"""The card a customer adds: signed, complete, localized, branded, and reachable without an API key."""

import io
import json
import struct
import subprocess
import zipfile
import zlib

import pytest

from tests.factories import TEST_PASS_TYPE_ID, TEST_TEAM_ID, auth, make_member, make_merchant, make_png, make_program


@pytest.fixture
def shop(app, client):
    _, key = make_merchant(app)
    program = make_program(client, key, branding={"background_color": "#102030", "logo_text": "Bean There"},
                           terms="No cash value.")
    return key, program


def _public_pass(client, member):
    response = client.get(member["apple_pass_url"].replace("https://punchpass.test", ""))
    assert response.status_code == 200
    return response


def test_public_card_link_needs_no_key_and_downloads_as_a_pkpass(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"])
    response = _public_pass(client, member)
    assert response.mimetype == "application/vnd.apple.pkpass"
    assert response.headers["Content-Disposition"] == 'attachment; filename="bean-there.pkpass"'
    assert client.get("/cards/" + "A" * 32 + ".pkpass").status_code == 404


def test_downloaded_card_verifies_with_openssl_against_the_dev_root(client, shop, cert_chain, tmp_path):
    key, program = shop
    member = make_member(client, key, program["id"], points=42)
    archive = zipfile.ZipFile(io.BytesIO(_public_pass(client, member).data))
    archive.extractall(tmp_path)
    result = subprocess.run(["openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "signature",
                             "-content", tmp_path / "manifest.json", "-CAfile", cert_chain["root_ca"],
                             "-purpose", "any", "-out", "/dev/null"], capture_output=True)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(archive.read("manifest.json"))
    assert set(manifest) == set(archive.namelist()) - {"manifest.json", "signature"}


def test_card_shows_balance_tier_name_and_branding(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"], points=42, name="Mina Park")
    archive = zipfile.ZipFile(io.BytesIO(_public_pass(client, member).data))
    pass_json = json.loads(archive.read("pass.json"))
    assert (pass_json["passTypeIdentifier"], pass_json["teamIdentifier"]) == (TEST_PASS_TYPE_ID, TEST_TEAM_ID)
    assert pass_json["backgroundColor"] == "rgb(16, 32, 48)" and pass_json["logoText"] == "Bean There"
    card = pass_json["storeCard"]
    assert card["primaryFields"][0]["value"] == 42
    values = {f["key"]: f["value"] for group in card.values() for f in group}
    assert values["member"] == "Mina Park" and values["tier"] == "Bronze" and values["terms"] == "No cash value."
    assert pass_json["barcodes"][0] == {"format": "PKBarcodeFormatQR", "message": member["barcode_value"],
                                        "messageEncoding": "iso-8859-1"}
    assert {"en.lproj/pass.strings", "ja.lproj/pass.strings", "ko.lproj/pass.strings", "icon.png",
            "icon@2x.png", "icon@3x.png"} <= set(archive.namelist())


def test_uploaded_logo_replaces_the_default_on_every_card(client, shop):
    key, program = shop
    member = make_member(client, key, program["id"])
    before = zipfile.ZipFile(io.BytesIO(_public_pass(client, member).data)).read("logo@2x.png")
    upload = client.put(f"/api/v1/programs/{program['id']}/images/logo", headers=auth(key),
                        data={"file": (io.BytesIO(make_png(600, 200)), "logo.png")})
    assert upload.status_code == 200 and "logo@3x.png" in upload.get_json()["images"]
    after = zipfile.ZipFile(io.BytesIO(_public_pass(client, member).data)).read("logo@2x.png")
    assert after != before


@pytest.mark.parametrize("payload", [b"GIF89a not a png", b"\x89PNG\r\n\x1a\n truncated", "bomb"])
def test_bad_image_upload_is_422_naming_the_file(client, shop, payload):
    key, program = shop
    data = _png_header_claiming(40000, 40000) if payload == "bomb" else payload
    response = client.put(f"/api/v1/programs/{program['id']}/images/logo", headers=auth(key),
                          data={"file": (io.BytesIO(data), "logo.png")})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert "file" in response.get_json()["errors"]


def test_image_wider_than_4096_pixels_is_422_naming_the_limit(client, shop):
    key, program = shop
    response = client.put(f"/api/v1/programs/{program['id']}/images/strip", headers=auth(key),
                          data={"file": (io.BytesIO(make_png(5000, 100)), "strip.png")})
    assert response.status_code == 422
    assert "4096" in response.get_json()["errors"]["file"][0]


def test_unknown_image_kind_is_422(client, shop):
    key, program = shop
    response = client.put(f"/api/v1/programs/{program['id']}/images/banner", headers=auth(key),
                          data={"file": (io.BytesIO(make_png(100, 100)), "x.png")})
    assert response.status_code == 422 and "kind" in response.get_json()["errors"]


def _png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image: a decompression bomb must be refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
