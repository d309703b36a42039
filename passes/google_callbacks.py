"""Checking Google Wallet's save/delete callbacks: the ECv2SigningOnly scheme of Google's payment-token
signatures ("Callbacks" in the Google Wallet API guide; Tink's PaymentMethodTokenRecipient implements the same).

A callback body is `{"signature", "intermediateSigningKey": {"signedKey", "signatures"}, "protocolVersion",
"signedMessage"}`. One of Google's root keys (published as JSON at a keys URL) signs the intermediate key; the
intermediate key signs the message. Each signature is ECDSA P-256 with SHA-256, over the fields below, each
prefixed by its length as 4 bytes little-endian:
- the intermediate key: sender id, protocol version, signedKey;
- the message: sender id, recipient id (our issuer id), protocol version, signedMessage.
Both the intermediate key (`keyExpiration`) and the message (`expTimeMillis`) expire."""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PROTOCOL_VERSION = "ECv2SigningOnly"
GOOGLE_SENDER_ID = "GooglePayPasses"  # what Google's passes callbacks are signed as
GOOGLE_KEYS_URL = "https://pay.google.com/gp/m/issuer/keys"


class CallbackError(ValueError):
    """The callback is malformed, expired or not signed by Google."""


@dataclass(frozen=True)
class RootKey:
    public_key: ec.EllipticCurvePublicKey
    expires_ms: int | None  # None: no expiry given


def parse_root_keys(document: object) -> list[RootKey]:
    """Google's published keys (`{"keys": [{"keyValue", "protocolVersion", "keyExpiration"?}]}`), keeping the
    ECv2SigningOnly ones."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise CallbackError('the keys document has no "keys" list')
    parsed = []
    for item in keys:
        if not isinstance(item, dict) or item.get("protocolVersion") != PROTOCOL_VERSION:
            continue
        expiry = item.get("keyExpiration")
        parsed.append(RootKey(_public_key(item.get("keyValue")), int(expiry) if _is_digits(expiry) else None))
    if not parsed:
        raise CallbackError(f"the keys document holds no {PROTOCOL_VERSION} key")
    return parsed


def verify_callback(body: object, root_keys: list[RootKey], *, recipient_id: str, now_ms: int,
                    sender_id: str = GOOGLE_SENDER_ID) -> dict:
    """The callback's message (`classId`, `objectId`, `eventType`, `nonce`, ...) once every signature and expiry
    checks out; CallbackError otherwise."""
    if not isinstance(body, dict) or body.get("protocolVersion") != PROTOCOL_VERSION:
        raise CallbackError(f"protocolVersion must be {PROTOCOL_VERSION}")
    intermediate, signed_message = body.get("intermediateSigningKey"), body.get("signedMessage")
    if not isinstance(intermediate, dict) or not isinstance(signed_message, str):
        raise CallbackError("intermediateSigningKey and signedMessage are required")
    signed_key = intermediate.get("signedKey")
    signatures = intermediate.get("signatures")
    if not isinstance(signed_key, str) or not isinstance(signatures, list):
        raise CallbackError("intermediateSigningKey needs signedKey and signatures")
    live_roots = [key for key in root_keys if key.expires_ms is None or key.expires_ms > now_ms]
    key_data = length_value(sender_id, PROTOCOL_VERSION, signed_key)
    if not any(_verifies(root.public_key, signature, key_data) for root in live_roots for signature in signatures):
        raise CallbackError("the intermediate signing key is not signed by a current Google root key")
    key = _json_object(signed_key, "signedKey")
    if not _is_digits(key.get("keyExpiration")) or int(key["keyExpiration"]) <= now_ms:
        raise CallbackError("the intermediate signing key has expired")
    message_data = length_value(sender_id, recipient_id, PROTOCOL_VERSION, signed_message)
    if not _verifies(_public_key(key.get("keyValue")), body.get("signature"), message_data):
        raise CallbackError("the message signature does not verify")
    message = _json_object(signed_message, "signedMessage")
    expiry = message.get("expTimeMillis")
    if expiry is not None and (not _is_digits(expiry) or int(expiry) <= now_ms):
        raise CallbackError("the message has expired")
    return message


def length_value(*parts: str) -> bytes:
    """Each part as UTF-8 after its length (4 bytes, little-endian): what the signatures cover."""
    return b"".join(struct.pack("<I", len(data)) + data for data in (part.encode() for part in parts))


def _verifies(key: ec.EllipticCurvePublicKey, signature: object, data: bytes) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _public_key(value: object) -> ec.EllipticCurvePublicKey:
    """A base64 DER SubjectPublicKeyInfo of a P-256 key."""
    try:
        key = serialization.load_der_public_key(base64.b64decode(str(value), validate=True))
    except ValueError:
        raise CallbackError("a key is not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CallbackError("a key is not an ECDSA P-256 key")
    return key


def _json_object(text: str, name: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise CallbackError(f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise CallbackError(f"{name} is not a JSON object")
    return value


def _is_digits(value: object) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).isdigit()
