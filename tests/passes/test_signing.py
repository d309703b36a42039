"""PassSigner: real signatures checked by openssl, and clear errors for bad credentials."""

import datetime as dt
import shutil
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from passes import CertificateError, PassSigner, make_test_chain

MANIFEST = (b'{"pass.json":"0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33",'
            b'"icon.png":"62cdb7020ff920e5aa642c3d4066950dd1f01f4d"}')

requires_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def openssl_verify(tmp_path, chain, signature: bytes, content: bytes, command: str = "smime", *extra: str):
    """Run `openssl smime|cms -verify` on a detached DER signature; return the finished process."""
    (tmp_path / "signature").write_bytes(signature)
    (tmp_path / "manifest.json").write_bytes(content)
    return subprocess.run(
        ["openssl", command, "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "signature"),
         "-content", str(tmp_path / "manifest.json"), "-CAfile", str(chain["root_ca"]), "-purpose", "any",
         "-out", str(tmp_path / "verified"), *extra],
        capture_output=True, text=True, check=False,
    )


def cms_print(tmp_path, signature: bytes) -> str:
    """openssl's structural dump of a DER CMS message."""
    (tmp_path / "dump.der").write_bytes(signature)
    command = ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(tmp_path / "dump.der")]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@requires_openssl
def test_signature_verifies_with_openssl_against_dev_root(tmp_path, dev_chain, signer):
    result = openssl_verify(tmp_path, dev_chain, signer.sign(MANIFEST), MANIFEST)
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr


@requires_openssl
def test_signature_verifies_with_openssl_cms(tmp_path, dev_chain, signer):
    result = openssl_verify(tmp_path, dev_chain, signer.sign(MANIFEST), MANIFEST, "cms")
    assert result.returncode == 0, result.stderr


@requires_openssl
def test_altered_manifest_fails_openssl_verification(tmp_path, dev_chain, signer):
    altered = MANIFEST.replace(b"0beec7", b"0beec8")
    result = openssl_verify(tmp_path, dev_chain, signer.sign(MANIFEST), altered)
    assert result.returncode != 0
    assert "digest failure" in result.stderr.lower()


@requires_openssl
def test_signer_is_the_pass_certificate(tmp_path, dev_chain, signer):
    result = openssl_verify(tmp_path, dev_chain, signer.sign(MANIFEST), MANIFEST, "cms",
                            "-signer", str(tmp_path / "signer.pem"))
    assert result.returncode == 0, result.stderr
    signer_cert = x509.load_pem_x509_certificate((tmp_path / "signer.pem").read_bytes())
    assert signer_cert == x509.load_pem_x509_certificate(dev_chain["pass_cert"].read_bytes())


def test_signature_carries_pass_and_wwdr_certificates(dev_chain, signer):
    carried = pkcs7.load_der_pkcs7_certificates(signer.sign(MANIFEST))
    expected = [x509.load_pem_x509_certificate(dev_chain[role].read_bytes()) for role in ("pass_cert", "wwdr")]
    assert sorted(carried, key=lambda c: c.serial_number) == sorted(expected, key=lambda c: c.serial_number)


@requires_openssl
def test_signature_is_detached_sha256_with_signing_time(tmp_path, signer):
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    dump = cms_print(tmp_path, signer.sign(MANIFEST))
    assert "eContent: <ABSENT>" in dump
    assert "algorithm: sha256 (2.16.840.1.101.3.4.2.1)" in dump
    assert "object: signingTime (1.2.840.113549.1.9.5)" in dump
    assert "object: messageDigest (1.2.840.113549.1.9.4)" in dump
    signed_at = dt.datetime.strptime(dump.split("UTCTIME:")[1].split("\n")[0].strip(), "%b %d %H:%M:%S %Y GMT")
    assert abs(signed_at.replace(tzinfo=dt.timezone.utc) - before) < dt.timedelta(minutes=1)


def test_signer_reads_ids_and_expiry_from_certificate(dev_chain, signer):
    cert = x509.load_pem_x509_certificate(dev_chain["pass_cert"].read_bytes())
    assert signer.pass_type_id == "pass.dev.punchpass"
    assert signer.team_id == "PUNCHDEV01"
    assert signer.not_valid_after == cert.not_valid_after_utc
    assert signer.not_valid_after.tzinfo is not None
    assert signer.cert_pem == dev_chain["pass_cert"].read_bytes()


def test_key_pem_is_unencrypted_and_works_as_tls_client_certificate(tmp_path, signer):
    (tmp_path / "cert.pem").write_bytes(signer.cert_pem)
    (tmp_path / "key.pem").write_bytes(signer.key_pem)
    assert b"ENCRYPTED" not in signer.key_pem
    ssl.create_default_context().load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")


def test_check_accepts_matching_ids(signer):
    signer.check(pass_type_id="pass.dev.punchpass", team_id="PUNCHDEV01")


def test_check_names_both_ids_when_pass_type_id_differs(signer):
    with pytest.raises(CertificateError) as raised:
        signer.check(pass_type_id="pass.com.example")
    assert str(raised.value) == ("`cert`: certificate is for pass.dev.punchpass "
                                 "but `pass_type_id` is pass.com.example")


def test_check_rejects_other_team(signer):
    with pytest.raises(CertificateError, match="`team_id` is OTHERTEAM1"):
        signer.check(team_id="OTHERTEAM1")


def test_check_rejects_certificate_past_its_expiry(signer):
    with pytest.raises(CertificateError, match="expired"):
        signer.check(now=signer.not_valid_after + dt.timedelta(seconds=1))


def test_check_rejects_certificate_not_yet_valid(signer):
    with pytest.raises(CertificateError, match="not valid before"):
        signer.check(now=signer.cert.not_valid_before_utc - dt.timedelta(seconds=1))


def test_check_rejects_expired_dev_certificate(tmp_path):
    chain = make_test_chain(tmp_path, days=-1)
    expired = PassSigner.from_files(chain["pass_cert"], chain["pass_key"], chain["wwdr"])
    with pytest.raises(CertificateError, match="`cert`: certificate expired"):
        expired.check()


def test_key_of_another_certificate_is_rejected_at_load(dev_chain):
    with pytest.raises(CertificateError, match="`key`: private key does not belong"):
        PassSigner.from_files(dev_chain["pass_cert"], dev_chain["server_key"], dev_chain["wwdr"])


def test_check_rejects_wwdr_that_did_not_issue_the_pass_certificate(dev_chain):
    wrong = PassSigner.from_files(dev_chain["pass_cert"], dev_chain["pass_key"], dev_chain["root_ca"])
    with pytest.raises(CertificateError, match="`wwdr`: the pass certificate was issued by"):
        wrong.check()


def test_p12_with_password_loads_certificate_and_key(tmp_path, dev_chain):
    p12 = _write_p12(tmp_path, dev_chain, b"s3cret")
    loaded = PassSigner.from_files(p12, None, dev_chain["wwdr"], password="s3cret")
    assert loaded.pass_type_id == "pass.dev.punchpass"
    loaded.check(pass_type_id="pass.dev.punchpass", team_id="PUNCHDEV01")


def test_p12_with_wrong_password_is_a_certificate_error(tmp_path, dev_chain):
    p12 = _write_p12(tmp_path, dev_chain, b"s3cret")
    with pytest.raises(CertificateError, match="`password`"):
        PassSigner.from_files(p12, None, dev_chain["wwdr"], password="wrong")


def test_encrypted_key_loads_with_password_and_asks_for_one_without(tmp_path, dev_chain):
    key = serialization.load_pem_private_key(dev_chain["pass_key"].read_bytes(), None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    cert, wwdr = dev_chain["pass_cert"].read_bytes(), dev_chain["wwdr"].read_bytes()
    assert PassSigner.from_pem(cert, encrypted, wwdr, password=b"pw").key_pem == PassSigner.from_pem(
        cert, dev_chain["pass_key"].read_bytes(), wwdr).key_pem
    with pytest.raises(CertificateError, match="set `password`"):
        PassSigner.from_pem(cert, encrypted, wwdr)
    with pytest.raises(CertificateError, match="wrong `password`"):
        PassSigner.from_pem(cert, encrypted, wwdr, password=b"nope")


def test_der_certificate_as_downloaded_from_apple_loads(tmp_path, dev_chain):
    cert = x509.load_pem_x509_certificate(dev_chain["pass_cert"].read_bytes())
    (tmp_path / "pass.cer").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    loaded = PassSigner.from_files(tmp_path / "pass.cer", dev_chain["pass_key"], dev_chain["wwdr"])
    assert loaded.cert == cert


def test_missing_file_names_the_setting(tmp_path, dev_chain):
    with pytest.raises(CertificateError, match="`wwdr`: cannot read"):
        PassSigner.from_files(dev_chain["pass_cert"], dev_chain["pass_key"], tmp_path / "missing.pem")


def test_dev_chain_is_reused_when_ids_match_and_replaced_when_they_differ(tmp_path):
    first = make_test_chain(tmp_path)
    original = first["pass_cert"].read_bytes()
    assert make_test_chain(tmp_path)["pass_cert"].read_bytes() == original
    other = make_test_chain(tmp_path, pass_type_id="pass.com.other")
    replaced = PassSigner.from_files(other["pass_cert"], other["pass_key"], other["wwdr"])
    assert replaced.pass_type_id == "pass.com.other"


def _write_p12(tmp_path, chain, password: bytes):
    """Bundle the dev pass cert + key the way Keychain Access exports them."""
    key = serialization.load_pem_private_key(chain["pass_key"].read_bytes(), None)
    cert = x509.load_pem_x509_certificate(chain["pass_cert"].read_bytes())
    data = pkcs12.serialize_key_and_certificates(b"Pass Type ID", key, cert, None,
                                                 serialization.BestAvailableEncryption(password))
    path = tmp_path / "pass.p12"
    path.write_bytes(data)
    return path


@requires_openssl
def test_legacy_rc2_p12_from_older_keychain_loads_directly(tmp_path, dev_chain):
    legacy = tmp_path / "legacy.p12"
    subprocess.run(["openssl", "pkcs12", "-export", "-legacy", "-in", str(dev_chain["pass_cert"]),
                    "-inkey", str(dev_chain["pass_key"]), "-out", str(legacy), "-passout", "pass:pw"],
                   capture_output=True, check=True)
    assert PassSigner.from_files(legacy, None, dev_chain["wwdr"], password="pw").team_id == "PUNCHDEV01"


def test_dev_chain_has_apple_shapes_and_a_loopback_server_certificate(dev_chain):
    pass_cert = x509.load_pem_x509_certificate(dev_chain["pass_cert"].read_bytes())
    wwdr = x509.load_pem_x509_certificate(dev_chain["wwdr"].read_bytes())
    server = x509.load_pem_x509_certificate(dev_chain["server_cert"].read_bytes())
    assert pass_cert.subject.rfc4514_string() == (
        "C=US,O=Punchpass Dev,OU=PUNCHDEV01,CN=Pass Type ID: pass.dev.punchpass,UID=pass.dev.punchpass")
    assert pass_cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.2.840.113635.100.6.1.16"))
    assert x509.ExtendedKeyUsageOID.CLIENT_AUTH in pass_cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert "CN=Apple Worldwide Developer Relations Certification Authority" in wwdr.subject.rfc4514_string()
    assert "OU=G4" in wwdr.subject.rfc4514_string()
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
