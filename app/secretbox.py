"""Secrets Punchpass must read back in clear (a webhook's signing secret: HMAC signs with the secret itself, so a
hash will not do), sealed at rest with a key derived from SECRET_KEY. A copy of the database alone then gives
none of them away; changing SECRET_KEY makes the sealed ones unreadable (the webhook must be created again)."""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretUnreadable(Exception):
    """Sealed under another SECRET_KEY (or damaged)."""


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) under a key HKDF derives from SECRET_KEY and `purpose`, so each use
    of SECRET_KEY (sessions, webhook secrets, ...) gets a key of its own."""

    def __init__(self, secret_key: str, purpose: str):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=f"punchpass {purpose}".encode()).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("sealed under another SECRET_KEY") from None


@lru_cache(maxsize=8)
def secret_box(secret_key: str, purpose: str) -> SecretBox:
    """The box for this key and purpose, derived once per process."""
    return SecretBox(secret_key, purpose)
