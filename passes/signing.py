"""Pass Type ID certificate loading, checks, and the detached PKCS#7 signature Wallet verifies.

Apple: the `signature` file is a DER PKCS#7 SignedData, detached, over the exact
manifest.json bytes, signed by the Pass Type ID certificate, carrying the WWDR
intermediate, with signingTime among the signed attributes ("Signature must contain
a signing date" otherwise). See docs/performance.md for why SignedData is built here
from a DER template instead of with `pkcs7.PKCS7SignatureBuilder`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PASS_TYPE_CN_PREFIX = "Pass Type ID: "

# DER tags and the fixed pieces of a CMS SignedData (RFC 5652) signed with RSA/SHA-256.
_SEQUENCE, _SET, _INTEGER, _OCTET_STRING, _UTC_TIME = 0x30, 0x31, 0x02, 0x04, 0x17
_CONTEXT_0 = 0xA0
_OID_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")
_OID_DATA = bytes.fromhex("06092a864886f70d010701")
_OID_CONTENT_TYPE = bytes.fromhex("06092a864886f70d010903")
_OID_MESSAGE_DIGEST = bytes.fromhex("06092a864886f70d010904")
_OID_SIGNING_TIME = bytes.fromhex("06092a864886f70d010905")
_SHA256_ALGORITHM = bytes.fromhex("300d06096086480165030402010500")
_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")
_VERSION_1 = bytes.fromhex("020101")


class CertificateError(ValueError):
    """A certificate, key or WWDR certificate that would produce passes Wallet refuses. The message names the
    argument at fault in backticks (`cert`, `key`, `wwdr`, `password`, `pass_type_id`, `team_id`), so an app
    can put its own setting names there."""


class PassSigner:
    """Pass Type ID certificate + key + WWDR, loaded once; signs manifests."""

    def __init__(self, cert: x509.Certificate, key: rsa.RSAPrivateKey, wwdr: x509.Certificate):
        """Keep the parsed objects and pre-encode everything a signature repeats."""
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CertificateError("`key`: expected an RSA private key (Apple issues RSA-2048)")
        self.cert, self.wwdr, self._key = cert, wwdr, key
        self._check_key_matches()
        self.pass_type_id = _pass_type_id(cert)
        self.team_id = _name_value(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
        self.not_valid_after: dt.datetime = cert.not_valid_after_utc
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        self._signed_data_head = _signed_data_head(cert, wwdr)
        self._signer_info_head = _signer_info_head(cert)
        self._padding, self._sha256 = padding.PKCS1v15(), hashes.SHA256()

    @classmethod
    def from_files(cls, cert: str | os.PathLike, key: str | os.PathLike | None, wwdr: str | os.PathLike,
                   password: str | bytes | None = None) -> PassSigner:
        """Load cert (PEM/DER) + key (PEM, maybe encrypted), or a .p12 as `cert` with key=None."""
        password = password.encode() if isinstance(password, str) else password
        wwdr_cert = _load_cert(_read("`wwdr`", wwdr), "`wwdr`")
        if key is None:
            pass_cert, pass_key = _load_p12(_read("`cert`", cert), password)
            return cls(pass_cert, pass_key, wwdr_cert)
        pass_cert = _load_cert(_read("`cert`", cert), "`cert`")
        return cls(pass_cert, _load_key(_read("`key`", key), password), wwdr_cert)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, wwdr_pem: bytes,
                 password: str | bytes | None = None) -> PassSigner:
        """Load from in-memory PEM (e.g. secrets from the environment)."""
        password = password.encode() if isinstance(password, str) else password
        return cls(_load_cert(cert_pem, "`cert`"), _load_key(key_pem, password),
                   _load_cert(wwdr_pem, "`wwdr`"))

    def check(self, pass_type_id: str | None = None, team_id: str | None = None,
              now: dt.datetime | None = None) -> None:
        """Raise CertificateError unless these credentials can sign passes Wallet will open."""
        now = now or dt.datetime.now(dt.timezone.utc)
        now = now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)  # a naive `now` is taken as UTC
        if pass_type_id is not None:
            self._check_pass_type_id(pass_type_id)
        if team_id is not None and self.team_id != team_id:
            raise CertificateError(f"`cert`: certificate is for team {self.team_id} "
                                   f"but `team_id` is {team_id}")
        _check_validity("`cert`", self.cert, now)
        self._check_key_matches()
        self._check_wwdr_issued_cert(now)

    def sign(self, data: bytes) -> bytes:
        """Detached DER PKCS#7 SignedData over `data` (SHA-256, signingTime, cert + WWDR)."""
        attributes = _signed_attributes(hashlib.sha256(data).digest(), dt.datetime.now(dt.timezone.utc))
        signature = self._key.sign(attributes, self._padding, self._sha256)
        signer_info = _der(_SEQUENCE, self._signer_info_head + b"\xa0" + attributes[1:]
                           + _RSA_ALGORITHM + _der(_OCTET_STRING, signature))
        signed_data = _der(_SEQUENCE, self._signed_data_head + _der(_SET, signer_info))
        return _der(_SEQUENCE, _OID_SIGNED_DATA + _der(_CONTEXT_0, signed_data))

    def _check_pass_type_id(self, expected: str) -> None:
        """Apple: passTypeIdentifier must equal the certificate's UID (and its CN suffix)."""
        common_name = _name_value(self.cert.subject, NameOID.COMMON_NAME) or ""
        cn_id = common_name[len(PASS_TYPE_CN_PREFIX):] if common_name.startswith(PASS_TYPE_CN_PREFIX) else None
        for found in (self.pass_type_id, cn_id):
            if found is not None and found != expected:
                raise CertificateError(f"`cert`: certificate is for {found} "
                                       f"but `pass_type_id` is {expected}")
        if self.pass_type_id is None:
            raise CertificateError("`cert`: certificate has no pass type id (subject UID); "
                                   "is this a Pass Type ID certificate?")

    def _check_key_matches(self) -> None:
        """A key from another certificate signs fine but Wallet rejects the pass."""
        if self._key.public_key().public_numbers() != self.cert.public_key().public_numbers():
            raise CertificateError("`key`: private key does not belong to the certificate in "
                                   "`cert`")

    def _check_wwdr_issued_cert(self, now: dt.datetime) -> None:
        """Catch the classic wrong-intermediate mistake (expired G1 instead of G4)."""
        _check_validity("`wwdr`", self.wwdr, now)
        try:
            self.cert.verify_directly_issued_by(self.wwdr)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateError(
                f"`wwdr`: the pass certificate was issued by '{self.cert.issuer.rfc4514_string()}' "
                f"but `wwdr` is '{self.wwdr.subject.rfc4514_string()}' (passes need WWDR G4)"
            ) from None


def _signed_attributes(digest: bytes, signing_time: dt.datetime) -> bytes:
    """DER SET OF contentType, signingTime, messageDigest (the bytes RSA signs)."""
    utc_time = signing_time.strftime("%y%m%d%H%M%SZ").encode()
    attributes = [
        _der(_SEQUENCE, _OID_CONTENT_TYPE + _der(_SET, _OID_DATA)),
        _der(_SEQUENCE, _OID_SIGNING_TIME + _der(_SET, _der(_UTC_TIME, utc_time))),
        _der(_SEQUENCE, _OID_MESSAGE_DIGEST + _der(_SET, _der(_OCTET_STRING, digest))),
    ]
    return _der(_SET, b"".join(sorted(attributes)))  # DER: SET OF sorted by encoding


def _signed_data_head(cert: x509.Certificate, wwdr: x509.Certificate) -> bytes:
    """SignedData fields before signerInfos: version, digest algs, detached content, certificates."""
    der = serialization.Encoding.DER
    certificates = sorted([cert.public_bytes(der), wwdr.public_bytes(der)])  # DER: SET OF sorted
    return _VERSION_1 + _der(_SET, _SHA256_ALGORITHM) + _der(_SEQUENCE, _OID_DATA) + _der(
        _CONTEXT_0, b"".join(certificates))


def _signer_info_head(cert: x509.Certificate) -> bytes:
    """SignerInfo fields before the signed attributes: version, issuerAndSerialNumber, digest alg."""
    issuer_and_serial = _der(_SEQUENCE, cert.issuer.public_bytes() + _der_integer(cert.serial_number))
    return _VERSION_1 + issuer_and_serial + _SHA256_ALGORITHM


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV with definite length."""
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + content


def _der_integer(value: int) -> bytes:
    """DER INTEGER for a non-negative value (leading zero when the top bit is set)."""
    return _der(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _check_validity(setting: str, cert: x509.Certificate, now: dt.datetime) -> None:
    """Expired or not-yet-valid certificates make passes that fail to open."""
    if now >= cert.not_valid_after_utc:
        raise CertificateError(f"{setting}: certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if now < cert.not_valid_before_utc:
        raise CertificateError(f"{setting}: certificate is not valid before "
                               f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")


def _pass_type_id(cert: x509.Certificate) -> str | None:
    """Pass type id from the subject UID (OID 0.9.2342.19200300.100.1.1)."""
    return _name_value(cert.subject, NameOID.USER_ID)


def _name_value(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    """First value of `oid` in a name, or None."""
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def _read(setting: str, path: str | os.PathLike) -> bytes:
    """Read a credential file, naming the setting when it is missing."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CertificateError(f"{setting}: cannot read {path}: {error.strerror}") from None


def _load_cert(data: bytes, setting: str) -> x509.Certificate:
    """Certificate from PEM or DER (Apple's download, pass.cer, is DER)."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertificateError(f"{setting}: not a PEM or DER X.509 certificate") from None


def _load_key(data: bytes, password: bytes | None) -> rsa.RSAPrivateKey:
    """PEM private key; a password given for an unencrypted key is ignored."""
    try:
        return serialization.load_pem_private_key(data, password)
    except TypeError:
        if password is None:
            raise CertificateError("`key`: key is encrypted; set `password`") from None
        return _load_key(data, None)
    except ValueError:
        message = "wrong `password`" if password else "not a PEM private key"
        raise CertificateError(f"`key`: {message}") from None


def _load_p12(data: bytes, password: bytes | None) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """Certificate and key from a PKCS#12 file as exported by Keychain Access."""
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise CertificateError("`cert`: cannot open the .p12 (wrong `password`?)") from None
    if cert is None or key is None:
        raise CertificateError("`cert`: the .p12 must hold both the certificate and its private key")
    return cert, key
