"""Google's published schema for Wallet objects: the walletobjects v1 discovery document that ships inside
google-api-python-client. `schema_errors` checks a body against one of its schemas, stricter than Google's
servers are: an unknown field, a wrong type, a deprecated field or enum value is an error."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import googleapiclient

DOCUMENT = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "walletobjects.v1.json"
_JSON_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


@lru_cache(maxsize=1)
def schemas() -> dict:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))["schemas"]


def schema_errors(body: object, schema_name: str) -> list[str]:
    """Every problem found, as `path: what`; empty when the body fits."""
    errors: list[str] = []
    _check(body, {"$ref": schema_name}, schema_name, errors)
    return errors


def _check(value: object, spec: dict, path: str, errors: list[str]) -> None:
    if "$ref" in spec:
        _check_object(value, schemas()[spec["$ref"]], path, errors)
        return
    kind = spec.get("type")
    if kind == "array":
        if not isinstance(value, list):
            errors.append(f"{path}: expected an array, got {type(value).__name__}")
            return
        for n, item in enumerate(value):
            _check(item, spec["items"], f"{path}[{n}]", errors)
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer, got {value!r}")
        elif spec.get("format") == "int32" and not -2**31 <= value < 2**31:
            errors.append(f"{path}: {value} does not fit int32")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: expected a number, got {value!r}")
    elif kind in _JSON_TYPES:
        if not isinstance(value, _JSON_TYPES[kind]):
            errors.append(f"{path}: expected {kind}, got {value!r}")
        elif kind == "string" and spec.get("format") == "int64" and not value.lstrip("-").isdigit():
            errors.append(f"{path}: expected an int64 as a string, got {value!r}")
    if "enum" in spec and isinstance(value, str):
        _check_enum(value, spec, path, errors)


def _check_enum(value: str, spec: dict, path: str, errors: list[str]) -> None:
    if value not in spec["enum"]:
        errors.append(f"{path}: {value!r} is not one of {spec['enum']}")
        return
    deprecated = spec.get("enumDeprecated") or [False] * len(spec["enum"])
    if deprecated[spec["enum"].index(value)]:
        errors.append(f"{path}: {value!r} is deprecated")


def _check_object(value: object, schema: dict, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object, got {value!r}")
        return
    properties = schema.get("properties", {})
    for name, item in value.items():
        spec = properties.get(name)
        if spec is None:
            errors.append(f"{path}.{name}: unknown field")
        elif spec.get("deprecated"):
            errors.append(f"{path}.{name}: deprecated field")
        else:
            _check(item, spec, f"{path}.{name}", errors)
