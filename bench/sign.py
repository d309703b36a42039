"""Passes built + signed per second on one core, against raw RSA and wallet-py3k.

Run: .venv/bin/python -m bench.sign   (single process, about 35 s)

The card: storeCard pass.json of about 2 KB with barcodes, icon/logo/strip/thumbnail
PNGs at @1x/@2x/@3x (noisy, about 230 KB together), en/ja/ko pass.strings with 15
strings each. Rates are wall-clock; each figure is the best of a few rounds.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7
from PIL import Image

from passes import PassPackager, PassSigner, make_test_chain, package_pass
from passes.pkpass import manifest_bytes, pass_json_bytes

IMAGE_POINTS = {"icon": (29, 29), "logo": (160, 50), "strip": (375, 123), "thumbnail": (90, 90)}
STRING_KEYS = ["points", "tier", "member", "since", "rewards", "next_reward", "terms", "terms_text", "contact",
               "website", "balance_changed", "tier_changed", "reward_ready", "expires", "store_hours"]
TRANSLATIONS = {"en": "Points and rewards", "ja": "ポイントと特典のご案内", "ko": "포인트 및 혜택 안내"}
KEY_PASSWORD = "bench-password"


def noisy_png(width: int, height: int) -> bytes:
    """Gradient + noise, palette PNG: compresses like a real logo or photo strip, not to nothing."""
    gradient = Image.linear_gradient("L").resize((width, height))
    mixed = Image.blend(gradient, Image.effect_noise((width, height), 64), 0.06)
    flipped = gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buffer = io.BytesIO()
    Image.merge("RGB", (mixed, gradient, flipped)).quantize(128).save(buffer, format="PNG")
    return buffer.getvalue()


def card_assets() -> dict[str, bytes]:
    """Images at Apple's sizes for @1x/@2x/@3x plus three localizations."""
    files = {}
    for name, (width, height) in IMAGE_POINTS.items():
        for scale, suffix in ((1, ""), (2, "@2x"), (3, "@3x")):
            files[f"{name}{suffix}.png"] = noisy_png(width * scale, height * scale)
    for language, text in TRANSLATIONS.items():
        lines = [f'"{key}" = "{text} — {key} %@";' for key in STRING_KEYS]
        files[f"{language}.lproj/pass.strings"] = "\n".join(lines).encode("utf-8")
    return files


def card_json(serial: str) -> dict:
    """A store card as Punchpass issues it (about 2 KB)."""
    return {
        "formatVersion": 1, "passTypeIdentifier": "pass.dev.punchpass", "teamIdentifier": "PUNCHDEV01",
        "serialNumber": serial, "organizationName": "Café Punch", "description": "Café Punch loyalty card",
        "authenticationToken": "k3J9xQ2mV7pL0sR4tY8wZ1aB5cD6eF", "webServiceURL": "https://punch.example.com/wallet",
        "backgroundColor": "rgb(32,41,58)", "foregroundColor": "rgb(255,255,255)", "labelColor": "rgb(200,210,230)",
        "logoText": "Café Punch", "sharingProhibited": True,
        "storeCard": {
            "headerFields": [{"key": "tier", "label": "tier", "value": "Gold", "changeMessage": "tier_changed"}],
            "primaryFields": [{"key": "balance", "label": "points", "value": 1240, "changeMessage": "balance_changed"}],
            "secondaryFields": [{"key": "member", "label": "member", "value": "Hanako Yamada"},
                                {"key": "next_reward", "label": "next_reward", "value": "Free latte at 1500"}],
            "auxiliaryFields": [{"key": "since", "label": "since", "value": "2024-03-01T00:00:00Z",
                                 "dateStyle": "PKDateStyleMedium"}],
            "backFields": [{"key": "terms", "label": "terms", "value": "terms_text"},
                           {"key": "contact", "label": "contact", "value": "hello@punch.example.com"},
                           {"key": "website", "label": "website", "value": "https://punch.example.com/m/" + serial},
                           {"key": "store_hours", "label": "store_hours", "value": "Mon–Sat 7:00–19:00"},
                           {"key": "rewards", "label": "rewards", "value": "Free latte · Pastry box · 10% off beans"},
                           {"key": "how_to_earn", "label": "how_to_earn",
                            "value": "1 point per ¥100 or ₩1,000 spent. Show this card before paying; points "
                                     "appear within a minute. Points expire 12 months after your last visit."}],
        },
        "barcodes": [{"format": f, "message": "PP1-7f3a9c2e4b6d8f01a3c5e7", "messageEncoding": "iso-8859-1",
                      "altText": "7f3a 9c2e"} for f in ("PKBarcodeFormatQR", "PKBarcodeFormatCode128")],
        "locations": [{"latitude": 35.6595, "longitude": 139.7005, "relevantText": "Café Punch Shibuya is nearby"},
                      {"latitude": 37.5665, "longitude": 126.9780, "relevantText": "Café Punch Seoul is nearby"}],
    }


def best_rates(actions: dict[str, object], seconds: float = 1.0, rounds: int = 5) -> dict[str, float]:
    """Calls per second of each action, best of `rounds` windows taken in turn (fair under noise)."""
    best = dict.fromkeys(actions, 0.0)
    for _ in range(rounds):
        for name, action in actions.items():
            action()
            count, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                action()
                count += 1
            best[name] = max(best[name], count / elapsed)
    return best


def wallet_py3k_card(serial: str, assets: dict[str, bytes]):
    """The same card through wallet-py3k's model (legacy `barcode`, no Code128, no barcodes array)."""
    from wallet.models import Barcode, BarcodeFormat, Pass, StoreCard

    data = card_json(serial)
    info = StoreCard()
    for section in ("headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields"):
        adder = getattr(info, "add" + section[0].upper() + section[1:-len("s")])
        for field in data["storeCard"][section]:
            adder(field["key"], field["value"], field["label"])
    card = Pass(info, passTypeIdentifier=data["passTypeIdentifier"], organizationName=data["organizationName"],
                teamIdentifier=data["teamIdentifier"])
    card.serialNumber, card.description = serial, data["description"]
    card.webServiceURL, card.authenticationToken = data["webServiceURL"], data["authenticationToken"]
    card.backgroundColor, card.foregroundColor = data["backgroundColor"], data["foregroundColor"]
    card.labelColor, card.logoText, card.locations = data["labelColor"], data["logoText"], data["locations"]
    card.barcode = Barcode(data["barcodes"][0]["message"], BarcodeFormat.QR, data["barcodes"][0]["altText"])
    for name, content in assets.items():
        card.addFile(name, io.BytesIO(content))
    return card


def encrypted_key_copy(key_path: Path) -> Path:
    """wallet-py3k always passes -passin, so it needs a password-protected key."""
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    copy = key_path.with_name("pass-encrypted.key")
    copy.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(KEY_PASSWORD.encode())))
    return copy


def main() -> None:
    """Measure and print the figures docs/performance.md quotes."""
    with tempfile.TemporaryDirectory() as tmp:
        chain = make_test_chain(tmp)
        assets = card_assets()
        signer = PassSigner.from_files(chain["pass_cert"], chain["pass_key"], chain["wwdr"])
        packager = PassPackager(assets)
        serials = iter(range(10**9))
        manifest = manifest_bytes({"pass.json": pass_json_bytes(card_json("M-0")), **assets})
        key = serialization.load_pem_private_key(signer.key_pem, None)
        sha256, pkcs1 = hashes.SHA256(), padding.PKCS1v15()
        rates = best_rates({
            "raw": lambda: key.sign(manifest, pkcs1, sha256),
            "ours": lambda: packager.package(card_json(f"M-{next(serials)}"), signer),
            "one_shot": lambda: package_pass(card_json(f"M-{next(serials)}"), assets, signer),
            "template": lambda: signer.sign(manifest),
            "builder": lambda: builder_sign(signer, key, manifest),
        })
        wallet_rate = wallet_py3k_rate(chain, assets)
        size = len(packager.package(card_json("M-size"), signer))
    print_figures(rates, wallet_rate, assets, size)


def print_figures(rates: dict[str, float], wallet_rate: float, assets: dict[str, bytes], size: int) -> None:
    """The table and ratios, one figure per line."""
    asset_kb, pass_json_kb = sum(map(len, assets.values())) / 1024, len(pass_json_bytes(card_json("M-1"))) / 1024
    print(f"card: {len(assets)} assets, {asset_kb:.0f} KB; .pkpass {size / 1024:.0f} KB; "
          f"pass.json {pass_json_kb:.1f} KB")
    print(f"raw RSA-2048 sign (cryptography key.sign)      {rates['raw']:8.0f} /s")
    print(f"PassPackager.package (ours, service path)      {rates['ours']:8.0f} passes/s")
    print(f"package_pass (ours, one-shot zipfile path)     {rates['one_shot']:8.0f} passes/s")
    print(f"wallet-py3k 0.0.4 (openssl smime subprocess)   {wallet_rate:8.1f} passes/s")
    print(f"sign only: DER template (PassSigner.sign)      {rates['template']:8.0f} /s")
    print(f"sign only: cryptography PKCS7SignatureBuilder  {rates['builder']:8.0f} /s")
    print(f"ours / raw RSA = {rates['ours'] / rates['raw']:.2f} (target >= 0.8)")
    print(f"ours / wallet-py3k = {rates['ours'] / wallet_rate:.0f}x")
    print(f"template / builder (sign only) = {rates['template'] / rates['builder']:.2f}")


def builder_sign(signer: PassSigner, key, data: bytes) -> bytes:
    """The same detached signature via cryptography's PKCS7SignatureBuilder, for comparison."""
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.NoCapabilities]
    return (pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(signer.cert, key, hashes.SHA256())
            .add_certificate(signer.wwdr).sign(serialization.Encoding.DER, options))


def wallet_py3k_rate(chain: dict[str, Path], assets: dict[str, bytes]) -> float:
    """wallet-py3k building and signing the same card (one openssl process per pass)."""
    key = encrypted_key_copy(chain["pass_key"])
    serials = iter(range(10**9))

    def build() -> None:
        card = wallet_py3k_card(f"W-{next(serials)}", assets)
        card.create(str(chain["pass_cert"]), str(key), str(chain["wwdr"]), KEY_PASSWORD)

    return best_rates({"wallet": build}, seconds=3, rounds=2)["wallet"]


if __name__ == "__main__":
    main()
