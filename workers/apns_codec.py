"""The bytes of an APNs exchange: header blocks out (HPACK literals), status and Apple's JSON reason in.
Kept apart from the connection logic in workers/apns_h2.py so each reads on its own."""

from __future__ import annotations

import json


class LiteralEncoder:
    """HPACK without dynamic table or Huffman (RFC 7541 6.2.2); repeated fields are cached bytes.

    hpack's Encoder Huffman-codes and indexes every token path, which costs more CPU than
    the rest of a push; literals share no state with the server's decoder.
    """

    header_table_size = 0  # h2 sets this from the server's SETTINGS; the table is never used

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, bytes], bytes] = {}
        self._start = b"\x20"  # RFC 7541 6.3: dynamic table size 0, said in the first block

    def encode(self, headers) -> bytes:
        """Encode one header block."""
        cache = self._cache
        parts = [self._start]
        self._start = b""
        for header in headers:
            field = cache.get(header)
            if field is None:
                field = b"\x00" + _hpack_string(header[0]) + _hpack_string(header[1])
                if header[0] != b":path":
                    cache[header] = field
            parts.append(field)
        return b"".join(parts)


def _hpack_string(raw: bytes) -> bytes:
    """RFC 7541 5.2 string literal without Huffman; length as a 7-bit-prefix integer (5.1)."""
    size = len(raw)
    if size < 127:
        return bytes((size,)) + raw
    out, size = [127], size - 127
    while size >= 128:
        out.append(size & 127 | 128)
        size >>= 7
    out.append(size)
    return bytes(out) + raw


def read_headers(headers) -> tuple[int, float | None]:
    """:status and, when present, retry-after seconds from response headers."""
    status, retry_after = 0, None
    for name, value in headers or ():
        if name == b":status":
            status = int(value)
        elif name == b"retry-after" and value.isdigit():
            retry_after = float(value)
    return status, retry_after


def read_body(body: bytes) -> tuple[str | None, int | None]:
    """Apple: error bodies are {"reason": ..., "timestamp": ms (410 only)}."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    timestamp = data.get("timestamp")
    return data.get("reason"), timestamp if isinstance(timestamp, int) else None
