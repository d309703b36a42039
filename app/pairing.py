"""Pairing a till: an admin makes a short code (and its QR); the till enters or scans it on /checkout and is
signed in with a POS key made for it there and then. Nobody types, copies or sees a 50-character key.

The code is 8 characters from an alphabet without look-alikes (about 2^40 codes), lives `DEFAULT_TTL_SECONDS`,
works once, and only its SHA-256 is stored; sign-in attempts are rate limited per address, so guessing one in
its lifetime is out of reach."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.auth import new_api_key
from app.models import ApiKey, PairingCode, utcnow

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or typed on a phone
CODE_LENGTH = 8
DEFAULT_TTL_SECONDS = 600
MAX_TTL_SECONDS = 3600


def create_pairing_code(session: Session, merchant_id: int, store: str | None = None,
                        ttl_seconds: int = DEFAULT_TTL_SECONDS) -> tuple[str, PairingCode]:
    """The code in clear (shown once, like a key) and its row."""
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    row = PairingCode(merchant_id=merchant_id, code_hash=_hash(code), store=store,
                      expires_at=utcnow() + timedelta(seconds=ttl_seconds))
    session.add(row)
    session.flush()
    return code, row


def redeem_pairing_code(session: Session, code: str) -> ApiKey | None:
    """A new POS key for the till that presents a live, unused code; None otherwise. The conditional UPDATE makes
    the code single-use even when two tills present it at the same moment: only one of them changes the row."""
    normalized = normalize_code(code)
    if len(normalized) != CODE_LENGTH:
        return None
    now = utcnow()
    pairing = session.scalar(select(PairingCode).where(PairingCode.code_hash == _hash(normalized)))
    if pairing is None or pairing.used_at is not None or pairing.expires_at <= now:
        return None
    claimed = session.execute(update(PairingCode).where(PairingCode.id == pairing.id, PairingCode.used_at.is_(None))
                              .values(used_at=now).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return None
    _raw_key, key = new_api_key(session, pairing.merchant_id, "pos", store=pairing.store)  # lives in the cookie only
    pairing.api_key_id = key.id
    return key


def normalize_code(text: str) -> str:
    """What a person types or a camera reads: `abcd-2345`, ` ABCD 2345 `, or the pairing link itself."""
    text = text.rsplit("pair=", 1)[-1]
    return "".join(ch for ch in text.upper() if ch in ALPHABET)


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
