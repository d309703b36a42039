"""Devices that hold a card: what a Wallet push token looks like. One rule for the web service that accepts a
token and the APNs sender that uses it, so a token accepted at registration is a token that can be pushed."""

from __future__ import annotations

import re

MAX_PUSH_TOKEN_LENGTH = 200  # the registrations table's column
# Apple: the device token is hex ("32 bytes today", its length "may vary"); 8 bytes is a sane floor.
_PUSH_TOKEN = re.compile(rf"[0-9A-Fa-f]{{16,{MAX_PUSH_TOKEN_LENGTH}}}")


def is_push_token(value: object) -> bool:
    """True for a string APNs could have issued: hex, 16 to MAX_PUSH_TOKEN_LENGTH characters."""
    return isinstance(value, str) and _PUSH_TOKEN.fullmatch(value) is not None
