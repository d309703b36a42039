"""Secrets the database keeps but must not be able to read by itself (a merchant's Firebase key, a webhook's
signing secret): sealed with
AES-256-GCM under a key derived (HKDF-SHA256) from a setting, and bound to what they belong to, so a sealed
value copied onto another merchant's row does not open there."""

from __future__ import annotations

import base64
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"  # first byte of every sealed value: room for another scheme or key later
_NONCE = 12


class UnsealError(Exception):
    """Wrong key (the setting changed since it was sealed), another owner, or damaged bytes."""


def derive_key(secret: str, purpose: str) -> bytes:
    """A 256-bit key for one purpose: the same setting never keys two uses."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"punchpass:{purpose}".encode()) \
        .derive(secret.encode())


def seal(key: bytes, plaintext: bytes, owner: str) -> bytes:
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, owner.encode())


def unseal(key: bytes, sealed: bytes, owner: str) -> bytes:
    if sealed[:1] != _VERSION or len(sealed) < 1 + _NONCE + 16:
        raise UnsealError("not a sealed value of this version")
    try:
        return AESGCM(key).decrypt(sealed[1:1 + _NONCE], sealed[1 + _NONCE:], owner.encode())
    except InvalidTag:
        raise UnsealError("cannot open: another key or owner, or damaged") from None


class SecretBox:
    """Text secrets sealed for a column (a webhook's signing secret, which HMAC needs in clear, so a hash will not
    do): `seal`/`unseal` above, base64 text, one key per purpose, bound to an owner string."""

    def __init__(self, secret: str, purpose: str):
        self._key = derive_key(secret, purpose)

    def seal(self, plain: str, owner: str) -> str:
        return base64.b64encode(seal(self._key, plain.encode(), owner)).decode()

    def open(self, sealed: str, owner: str) -> str:
        try:
            raw = base64.b64decode(sealed, validate=True)
        except ValueError:
            raise UnsealError("not base64") from None
        return unseal(self._key, raw, owner).decode()


@lru_cache(maxsize=8)
def secret_box(secret: str, purpose: str) -> SecretBox:
    """The box for this key and purpose, derived once per process."""
    return SecretBox(secret, purpose)
