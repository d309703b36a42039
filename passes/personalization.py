"""Apple's rewards-enrollment personalization: a pass carrying `personalization.json` asks the customer to
sign up in Wallet; the device posts their details to `/personalize` and expects a detached PKCS#7 signature
of the personalization token back. Apple allows it only on passes with `nfc`, signed by an NFC-enabled pass
certificate (granted on request), so it is off unless the operator turns it on."""

from __future__ import annotations

import json

# Apple: PKPassPersonalizationField* names.
FIELDS = {
    "name": "PKPassPersonalizationFieldName",
    "postal_code": "PKPassPersonalizationFieldPostalCode",
    "email": "PKPassPersonalizationFieldEmailAddress",
    "phone": "PKPassPersonalizationFieldPhoneNumber",
}


def personalization_files(description: str, fields: tuple[str, ...] = ("name", "email"),
                          terms: str | None = None, logo_files: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """`personalization.json` plus the `personalizationLogo*.png` files (Apple: at most 150 x 40 pt; make them
    with `prepare_image("personalizationLogo", ...)`)."""
    unknown = set(fields) - set(FIELDS)
    if unknown or not fields:
        raise ValueError(f"fields must be a non-empty subset of {', '.join(FIELDS)}")
    document = {"description": description, "requiredPersonalizationFields": [FIELDS[f] for f in fields]}
    if terms:
        document["termsAndConditions"] = terms
    files = {"personalization.json": json.dumps(document, ensure_ascii=False).encode()}
    files.update(logo_files or {})
    return files


def read_personalization(body: object) -> tuple[str, dict]:
    """The device's POST body -> (token, {fullName, emailAddress, ...}); ValueError when malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("personalizationToken"), str):
        raise ValueError("personalizationToken is required")
    info = body.get("requiredPersonalizationInfo") or {}
    if not isinstance(info, dict):
        raise ValueError("requiredPersonalizationInfo must be an object")
    return body["personalizationToken"], {k: str(v)[:200] for k, v in info.items() if isinstance(v, (str, int))}
