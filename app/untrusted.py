"""Untrusted input the database cannot take, refused at the door instead of failing as a 500 deep inside:
text with a NUL (PostgreSQL refuses it) or a lone surrogate (no UTF-8 encoding exists), ids beyond a signed
64-bit integer, and JSON nested deeper than any request of ours needs."""

from __future__ import annotations

import json
import re

from werkzeug.routing import IntegerConverter, UnicodeConverter

MAX_ID = 2**63 - 1  # PostgreSQL bigint; SQLite's INTEGER has the same range
MAX_JSON_DEPTH = 32  # our deepest body is three levels; the JSON parser recurses once per level
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
# The NUL half of that rule as a JSON Schema pattern for /openapi.json. (A lone surrogate is no Unicode character,
# so no schema of text can name it; it is refused all the same.)
STORABLE_TEXT_PATTERN = r"^[^\u0000]*$"


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def scrub(text: str) -> str:
    """`text` with every NUL and lone surrogate replaced by U+FFFD, for input worth keeping anyway (device logs)."""
    return _UNSTORABLE.sub("\ufffd", text)


def load_json(data: bytes) -> object:
    """A request body as JSON; ValueError when it is not UTF-8 JSON or nests deeper than MAX_JSON_DEPTH. Deep
    nesting is refused here, before validation or hashing recurse through it: a body of 5,000 brackets makes
    the parser itself run out of stack (RecursionError), which this reports as the same ValueError."""
    try:
        body = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
    if _depth(body) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
    return body


def unstorable_fields(body: object) -> list[str]:
    """Where `body` holds text the database cannot store, named as validation errors name fields (`tiers.0.name`);
    a bad key is named by itself, made printable."""
    found, pending = [], [("", body)]
    while pending:
        path, node = pending.pop()
        if isinstance(node, str) and not is_storable(node):
            found.append(path or "_schema")
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in children:
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not is_storable(key):
                found.append(scrub(name))
            else:
                pending.append((name, value))
    return sorted(found)


def _depth(body: object) -> int:
    """Nesting depth without recursion (the body may be anything a client sent)."""
    deepest, pending = 0, [(1, body)]
    while pending:
        depth, node = pending.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            pending.extend((depth + 1, child) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


class StorableText(UnicodeConverter):
    """A path segment (`<token>`, `<device_id>`) never matches with a NUL or lone surrogate in it: such a URL names
    nothing (404), and the database is never asked."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.regex = self.regex.replace("[^/]", r"[^/\x00\ud800-\udfff]", 1)


class DatabaseId(IntegerConverter):
    """`<int:...>` up to MAX_ID, where the database would fail to compare a larger one. An id of more digits than
    MAX_ID matches no route (404); a 19-digit one past MAX_ID becomes 0, which is no row's id, so the view answers
    404. (Refusing it in `to_python` instead would let werkzeug answer 405 when another method's rule has the same
    path.) The regex also keeps Python from converting integers of more than 4,300 digits."""

    regex = rf"\d{{1,{len(str(MAX_ID))}}}"

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number <= MAX_ID else 0


URL_CONVERTERS = {"default": StorableText, "string": StorableText, "int": DatabaseId}
