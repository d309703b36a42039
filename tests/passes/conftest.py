"""Fixtures for the passes library: one dev certificate chain per test session."""

import io
import os

import pytest
from PIL import Image

from passes import PassSigner, make_test_chain


@pytest.fixture(scope="session")
def dev_chain(tmp_path_factory):
    """root CA -> WWDR -> pass certificate (+ server cert) from passes.devcerts."""
    return make_test_chain(tmp_path_factory.mktemp("dev-chain"))


@pytest.fixture(scope="session")
def signer(dev_chain):
    """A PassSigner over the dev chain."""
    return PassSigner.from_files(dev_chain["pass_cert"], dev_chain["pass_key"], dev_chain["wwdr"])


def make_png(width: int, height: int) -> bytes:
    """A noisy RGBA PNG that deflate cannot shrink much."""
    image = Image.frombytes("RGBA", (width, height), os.urandom(width * height * 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def pass_json():
    """A small but complete storeCard pass.json for the dev pass type id."""
    return {
        "formatVersion": 1,
        "passTypeIdentifier": "pass.dev.punchpass",
        "teamIdentifier": "PUNCHDEV01",
        "serialNumber": "M-0001",
        "organizationName": "Café Punch",
        "description": "Punchpass loyalty card",
        "storeCard": {"primaryFields": [{"key": "balance", "label": "points", "value": 120,
                                         "changeMessage": "balance_changed"}]},
        "barcodes": [{"format": "PKBarcodeFormatQR", "message": "tok-123", "messageEncoding": "iso-8859-1"}],
    }


@pytest.fixture(scope="session")
def store_card_files():
    """Icons, logo, strip and two localizations, as a program's static assets."""
    return {
        "icon.png": make_png(29, 29),
        "icon@2x.png": make_png(58, 58),
        "logo.png": make_png(160, 50),
        "strip.png": make_png(375, 123),
        "en.lproj/pass.strings": '"points" = "Points";\n"balance_changed" = "You now have %@ points";\n'.encode(),
        "ja.lproj/pass.strings": '"points" = "ポイント";\n"balance_changed" = "%@ ポイントになりました";\n'.encode(),
    }
