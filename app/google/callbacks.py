"""Google's save/delete callbacks: the body checked against Google's published root keys (fetched from
GOOGLE_CALLBACK_KEYS_URL, kept for an hour per process), the message's fields checked before anyone reads them."""

from __future__ import annotations

import threading
import time

import requests

from app.config import GoogleConfig, trusted_ca_file
from app.untrusted import load_json
from passes.google_callbacks import CallbackError, RootKey, parse_root_keys, verify_callback

KEYS_TTL = 3600.0  # seconds a fetched key list is used; Google rotates root keys with long overlaps
EVENT_TYPES = {"save": "save", "del": "del", "delete": "del"}

_keys: dict[str, tuple[float, list[RootKey]]] = {}
_keys_lock = threading.Lock()


class CallbackKeysUnavailable(Exception):
    """Google's keys could not be fetched or read."""


def verified_callback(google: GoogleConfig, raw: bytes) -> dict:
    """The callback's message, normalised: `nonce`, `objectId`, `classId` and `eventType` ("save" or "del")."""
    try:
        body = load_json(raw)
    except ValueError:
        raise CallbackError("the body is not JSON") from None
    message = verify_callback(body, root_keys(google.callback_keys_url), recipient_id=google.issuer_id,
                              now_ms=int(time.time() * 1000), sender_id=google.callback_sender_id)
    event = EVENT_TYPES.get(str(message.get("eventType", "")).lower())
    fields = (message.get("nonce"), message.get("objectId"))
    if event is None or not all(isinstance(value, str) and 0 < len(value) <= 200 for value in fields):
        raise CallbackError("the message needs a nonce, an objectId and an eventType of save or del")
    return {**message, "eventType": event}


def root_keys(url: str) -> list[RootKey]:
    """Google's root keys, fetched at most once an hour (TLS trust: REQUESTS_CA_BUNDLE or SSL_CERT_FILE)."""
    now = time.monotonic()
    with _keys_lock:
        cached = _keys.get(url)
        if cached is not None and cached[0] > now:
            return cached[1]
    try:
        response = requests.get(url, timeout=5, verify=trusted_ca_file() or True)
        response.raise_for_status()
        keys = parse_root_keys(response.json())
    except (requests.RequestException, ValueError) as error:
        raise CallbackKeysUnavailable(f"{url}: {error}") from None
    with _keys_lock:
        _keys[url] = (now + KEYS_TTL, keys)
    return keys


def forget_keys() -> None:
    """Fetch the keys again on the next callback (tests rotate them)."""
    with _keys_lock:
        _keys.clear()
