"""Google service-account keys (the JSON file the Cloud console downloads), checked before they are used: what
Firebase and Google Wallet sign their OAuth assertions with. One reader for the instance's file and for a
merchant's upload, so both are refused for the same reasons."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
# Google Cloud: 6 to 30 lowercase letters, digits and hyphens, starting with a letter (old ones: "domain:id").
PROJECT_ID_PATTERN = r"^(?:[a-z0-9.-]{1,63}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$"
# The fields of the file google-auth reads; anything else in an upload is dropped.
FIELDS = ("type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "auth_uri",
          "token_uri", "auth_provider_x509_cert_url", "client_x509_cert_url", "universe_domain")


@dataclass(frozen=True)
class ServiceAccount:
    info: dict = field(repr=False)  # the JSON as google-auth takes it: it holds the private key

    @property
    def project_id(self) -> str:
        return self.info["project_id"]

    @property
    def client_email(self) -> str:
        return self.info["client_email"]

    @property
    def token_uri(self) -> str:
        return self.info.get("token_uri") or GOOGLE_TOKEN_URI


class ServiceAccountError(ValueError):
    """Not a usable service-account key; `field` names the part at fault. The message never quotes the key."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.reason = message


def service_account_from_json(text: str | bytes) -> ServiceAccount:
    try:
        info = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ServiceAccountError("_schema", "not JSON; expected the key file from the Google Cloud console") from None
    return service_account_from_info(info)


def service_account_from_info(info: object) -> ServiceAccount:
    """Checks what google-auth would only discover when it first asks for a token: the type, the project, the
    account's address and an RSA private key that parses."""
    if not isinstance(info, dict):
        raise ServiceAccountError("_schema", "expected a JSON object")
    if info.get("type") != "service_account":
        raise ServiceAccountError("type", 'must be "service_account" (a key file of a service account)')
    for name in ("project_id", "client_email", "private_key"):
        if not isinstance(info.get(name), str) or not info[name]:
            raise ServiceAccountError(name, "missing")
    if not re.fullmatch(PROJECT_ID_PATTERN, info["project_id"]):
        raise ServiceAccountError("project_id", "not a Google Cloud project id")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", info["client_email"]):
        raise ServiceAccountError("client_email", "not an email address")
    _check_private_key(info["private_key"])
    token_uri = info.get("token_uri")
    if token_uri is not None and not (isinstance(token_uri, str) and re.match(r"https?://[^\s/]+", token_uri)):
        raise ServiceAccountError("token_uri", "not an http(s) URL")
    return ServiceAccount({name: info[name] for name in FIELDS if info.get(name) is not None})


def _check_private_key(pem: str) -> None:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ServiceAccountError("private_key", "not a PEM private key without a password") from None
    if not isinstance(key, RSAPrivateKey):
        raise ServiceAccountError("private_key", "Google signs with RSA keys; this is another kind")
