"""A local certificate chain shaped like Apple's, for development and tests.

root CA -> "WWDR" intermediate -> Pass Type ID certificate (signs passes, and is the
APNs TLS client certificate), plus root CA -> ``localhost`` TLS server certificate for
the local fake APNs. Nothing here is trusted by a real device.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

# Apple marks Pass Type ID certificates with this extension (value: the pass type id).
PASS_TYPE_EXTENSION_OID = ObjectIdentifier("1.2.840.113635.100.6.1.16")
DEV_ORGANIZATION = "Punchpass Dev"
CA_DAYS = 3650

FILE_NAMES = {
    "root_ca": "root-ca.pem",
    "root_ca_key": "root-ca.key",
    "wwdr": "wwdr.pem",
    "pass_cert": "pass.pem",
    "pass_key": "pass.key",
    "server_cert": "server.pem",
    "server_key": "server.key",
}


def make_test_chain(
    out_dir: str | os.PathLike,
    pass_type_id: str = "pass.dev.punchpass",
    team_id: str = "PUNCHDEV01",
    days: int = 825,
    force: bool = False,
) -> dict[str, Path]:
    """Write the dev chain into out_dir (reusing a valid matching one) and return its paths by role."""
    out = Path(out_dir)
    paths = {role: out / name for role, name in FILE_NAMES.items()}
    if not force and _existing_chain_fits(paths, pass_type_id, team_id):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    root_key, root_cert = _make_root(now)
    wwdr_key, wwdr_cert = _make_wwdr(root_key, root_cert, now)
    pass_key, pass_cert = _make_pass_cert(wwdr_key, wwdr_cert, pass_type_id, team_id, now, days)
    server_key, server_cert = _make_server_cert(root_key, root_cert, now, days)
    _write_cert(paths["root_ca"], root_cert)
    _write_key(paths["root_ca_key"], root_key)
    _write_cert(paths["wwdr"], wwdr_cert)
    _write_cert(paths["pass_cert"], pass_cert)
    _write_key(paths["pass_key"], pass_key)
    _write_cert(paths["server_cert"], server_cert)
    _write_key(paths["server_key"], server_key)
    return paths


def _existing_chain_fits(paths: dict[str, Path], pass_type_id: str, team_id: str) -> bool:
    """True when every file exists, the pass cert names these ids, and no cert has expired."""
    if not all(path.exists() for path in paths.values()):
        return False
    try:
        certs = {role: _read_cert(paths[role]) for role in ("root_ca", "wwdr", "pass_cert", "server_cert")}
    except ValueError:
        return False
    now = dt.datetime.now(dt.timezone.utc)
    if any(not (c.not_valid_before_utc <= now < c.not_valid_after_utc) for c in certs.values()):
        return False
    subject = certs["pass_cert"].subject
    return _name_value(subject, NameOID.USER_ID) == pass_type_id and (
        _name_value(subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == team_id
    )


def _make_root(now: dt.datetime):
    """Self-signed root the tests and fakes trust (root-ca.pem)."""
    key = _new_key()
    name = _name((NameOID.COMMON_NAME, "Punchpass Dev Root CA"), (NameOID.ORGANIZATION_NAME, DEV_ORGANIZATION),
                 (NameOID.COUNTRY_NAME, "US"))
    builder = _ca_builder(name, name, key.public_key(), now, path_length=1)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    return key, builder.sign(key, hashes.SHA256())


def _make_wwdr(root_key, root_cert: x509.Certificate, now: dt.datetime):
    """Intermediate with the subject shape of Apple's WWDR G4 (the cert passes must include)."""
    key = _new_key()
    name = _name(
        (NameOID.COMMON_NAME, "Apple Worldwide Developer Relations Certification Authority"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "G4"),
        (NameOID.ORGANIZATION_NAME, DEV_ORGANIZATION),
        (NameOID.COUNTRY_NAME, "US"),
    )
    builder = _ca_builder(name, root_cert.subject, key.public_key(), now, path_length=0)
    builder = builder.add_extension(_authority_key_id(root_cert), critical=False)
    return key, builder.sign(root_key, hashes.SHA256())


def _make_pass_cert(wwdr_key, wwdr_cert, pass_type_id: str, team_id: str, now: dt.datetime, days: int):
    """Leaf with Apple's Pass Type ID subject (UID, CN, OU) and pass-type extension."""
    key = _new_key()
    # DER order as in Apple's certificates: UID first.
    name = _name(
        (NameOID.USER_ID, pass_type_id),
        (NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_id}"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
        (NameOID.ORGANIZATION_NAME, DEV_ORGANIZATION),
        (NameOID.COUNTRY_NAME, "US"),
    )
    builder = _leaf_builder(name, wwdr_cert, key.public_key(), now, days)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    builder = builder.add_extension(
        x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
    builder = builder.add_extension(
        x509.UnrecognizedExtension(PASS_TYPE_EXTENSION_OID, _der_utf8_string(pass_type_id)), critical=False)
    return key, builder.sign(wwdr_key, hashes.SHA256())


def _make_server_cert(root_key, root_cert, now: dt.datetime, days: int):
    """TLS server cert for localhost / 127.0.0.1 / ::1, issued straight by the root."""
    key = _new_key()
    name = _name((NameOID.COMMON_NAME, "localhost"), (NameOID.ORGANIZATION_NAME, DEV_ORGANIZATION))
    san = x509.SubjectAlternativeName([
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ])
    builder = _leaf_builder(name, root_cert, key.public_key(), now, days)
    builder = builder.add_extension(san, critical=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    builder = builder.add_extension(
        x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
    return key, builder.sign(root_key, hashes.SHA256())


def _ca_builder(subject, issuer, public_key, now: dt.datetime, path_length: int) -> x509.CertificateBuilder:
    """Common CA fields: ten-year validity, CA basic constraints, cert/CRL signing."""
    return (
        _base_builder(subject, issuer, public_key, now - dt.timedelta(days=1), now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    )


def _leaf_builder(subject, issuer_cert, public_key, now: dt.datetime, days: int) -> x509.CertificateBuilder:
    """Common leaf fields; a negative `days` yields an already-expired certificate (for tests)."""
    not_after = now + dt.timedelta(days=days)
    not_before = min(now, not_after) - dt.timedelta(days=1)
    return (
        _base_builder(subject, issuer_cert.subject, public_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_authority_key_id(issuer_cert), critical=False)
    )


def _base_builder(subject, issuer, public_key, not_before, not_after) -> x509.CertificateBuilder:
    """Fields every certificate in the chain has."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _authority_key_id(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI pointing at the issuer's SKI (strict X.509 verifiers want it)."""
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _name(*attributes) -> x509.Name:
    """x509.Name from (oid, value) pairs in DER order."""
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def _name_value(name: x509.Name, oid) -> str | None:
    """First value of `oid` in a name, or None."""
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def _der_utf8_string(text: str) -> bytes:
    """DER UTF8String (short form length is enough for a pass type id)."""
    raw = text.encode("utf-8")
    if len(raw) > 127:
        raise ValueError("pass type id too long for the dev certificate extension")
    return bytes([0x0C, len(raw)]) + raw


def _new_key() -> rsa.RSAPrivateKey:
    """RSA-2048, the size Apple issues."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _read_cert(path: Path) -> x509.Certificate:
    """Load a PEM certificate."""
    return x509.load_pem_x509_certificate(path.read_bytes())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    """Write a certificate as PEM."""
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write an unencrypted PKCS#8 PEM key readable only by the owner."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def main(argv: list[str] | None = None) -> int:
    """`python -m passes.devcerts --out DIR`: write (or reuse) the dev chain and list its files."""
    parser = argparse.ArgumentParser(prog="python -m passes.devcerts", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the certificates and keys")
    parser.add_argument("--pass-type-id", default="pass.dev.punchpass")
    parser.add_argument("--team-id", default="PUNCHDEV01")
    parser.add_argument("--days", type=int, default=825, help="validity of the pass and server certificates")
    parser.add_argument("--force", action="store_true", help="regenerate even if a matching chain exists")
    args = parser.parse_args(argv)
    paths = make_test_chain(args.out, args.pass_type_id, args.team_id, args.days, args.force)
    for role, path in paths.items():
        print(f"{role}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
