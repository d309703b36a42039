"""package_pass and PassPackager: complete, verifiable .pkpass archives."""

import hashlib
import io
import json
import shutil
import subprocess
import zipfile

import pytest

from passes import PassPackager, package_pass

requires_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def members(pkpass: bytes) -> dict[str, bytes]:
    """Every file in a .pkpass by name."""
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def compression(pkpass: bytes) -> dict[str, int]:
    """Each member's zip compression method."""
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        return {info.filename: info.compress_type for info in archive.infolist()}


def test_manifest_holds_sha1_of_every_other_file_in_the_zip(signer, pass_json, store_card_files):
    files = members(package_pass(pass_json, store_card_files, signer))
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    assert set(manifest) == {"pass.json", *store_card_files}
    assert all(manifest[name] == hashlib.sha1(files[name]).hexdigest() for name in manifest)


def test_pass_json_in_the_zip_is_the_given_dict(signer, pass_json, store_card_files):
    files = members(package_pass(pass_json, store_card_files, signer))
    assert json.loads(files["pass.json"]) == pass_json
    assert "Café".encode() in files["pass.json"]


@requires_openssl
def test_pkpass_signature_verifies_over_its_manifest_with_openssl(tmp_path, dev_chain, signer, pass_json,
                                                                  store_card_files):
    for pkpass in (package_pass(pass_json, store_card_files, signer),
                   PassPackager(store_card_files).package(pass_json, signer)):
        assert _openssl_verifies(tmp_path, dev_chain, members(pkpass))


@requires_openssl
def test_pkpass_with_edited_pass_json_fails_verification(tmp_path, dev_chain, signer, pass_json, store_card_files):
    files = members(package_pass(pass_json, store_card_files, signer))
    manifest = json.loads(files["manifest.json"])
    manifest["pass.json"] = hashlib.sha1(b"{}").hexdigest()
    files["manifest.json"] = json.dumps(manifest).encode()
    assert not _openssl_verifies(tmp_path, dev_chain, files)


def test_pngs_are_stored_and_strings_deflated(signer, pass_json, store_card_files):
    for pkpass in (package_pass(pass_json, store_card_files, signer),
                   PassPackager(store_card_files).package(pass_json, signer)):
        methods = compression(pkpass)
        assert {methods[name] for name in store_card_files if name.endswith(".png")} == {zipfile.ZIP_STORED}
        assert methods["ja.lproj/pass.strings"] == zipfile.ZIP_DEFLATED
        assert methods["signature"] == zipfile.ZIP_STORED


def test_packager_builds_the_same_pass_as_package_pass(signer, pass_json, store_card_files):
    reference = package_pass(pass_json, store_card_files, signer)
    fast = PassPackager(store_card_files).package(pass_json, signer)
    reference_files, fast_files = members(reference), members(fast)
    signatures = reference_files.pop("signature"), fast_files.pop("signature")
    assert fast_files == reference_files
    assert compression(fast) == compression(reference)
    assert len(signatures[0]) == len(signatures[1])


def test_packager_zip_passes_unzip_integrity_test(tmp_path, signer, pass_json, store_card_files):
    if shutil.which("unzip") is None:
        pytest.skip("needs the unzip command")
    (tmp_path / "card.pkpass").write_bytes(PassPackager(store_card_files).package(pass_json, signer))
    result = subprocess.run(["unzip", "-t", str(tmp_path / "card.pkpass")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


def test_packager_serves_many_members_from_one_asset_bundle(signer, pass_json, store_card_files):
    packager = PassPackager(store_card_files)
    serials = [f"M-{n:04d}" for n in range(3)]
    passes = [packager.package({**pass_json, "serialNumber": serial}, signer) for serial in serials]
    assert [json.loads(members(p)["pass.json"])["serialNumber"] for p in passes] == serials


def test_packager_extra_files_are_zipped_and_listed_in_the_manifest(signer, pass_json, store_card_files):
    extra = {"ko.lproj/pass.strings": '"points" = "포인트";\n'.encode()}
    files = members(PassPackager(store_card_files).package(pass_json, signer, extra_files=extra))
    manifest = json.loads(files["manifest.json"])
    assert files["ko.lproj/pass.strings"] == extra["ko.lproj/pass.strings"]
    assert manifest["ko.lproj/pass.strings"] == hashlib.sha1(extra["ko.lproj/pass.strings"]).hexdigest()
    assert set(manifest) == set(files) - {"manifest.json", "signature"}


def test_packager_refuses_extra_file_that_shadows_a_static_asset(signer, pass_json, store_card_files):
    with pytest.raises(ValueError, match="icon.png"):
        PassPackager(store_card_files).package(pass_json, signer, extra_files={"icon.png": b"x"})


@pytest.mark.parametrize("name", ["pass.json", "manifest.json", "signature", "../icon.png", "/icon.png"])
def test_reserved_or_escaping_asset_names_are_refused(signer, pass_json, name):
    with pytest.raises(ValueError):
        package_pass(pass_json, {name: b"x"}, signer)
    with pytest.raises(ValueError):
        PassPackager({name: b"x"})


def test_non_ascii_member_name_round_trips(signer, pass_json):
    files = members(PassPackager({"zh-Hans.lproj/説明.txt": b"hi"}).package(pass_json, signer))
    assert files["zh-Hans.lproj/説明.txt"] == b"hi"


def _openssl_verifies(tmp_path, chain, files: dict[str, bytes]) -> bool:
    """Does `openssl smime -verify` accept the archive's signature over its manifest.json?"""
    (tmp_path / "manifest.json").write_bytes(files["manifest.json"])
    (tmp_path / "signature").write_bytes(files["signature"])
    result = subprocess.run(
        ["openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "signature"),
         "-content", str(tmp_path / "manifest.json"), "-CAfile", str(chain["root_ca"]), "-purpose", "any",
         "-out", "/dev/null"],
        capture_output=True, check=False,
    )
    return result.returncode == 0
