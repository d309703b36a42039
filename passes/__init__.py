"""Punchpass pass library: build, sign and package wallet passes from plain Python."""

from passes.images import ImageError, default_images, prepare_image
from passes.pkpass import PassPackager, package_pass
from passes.signing import CertificateError, PassSigner
from passes.storecard import Branding, Goal, StoreCard, store_card_json
from passes.strings import pass_strings

__all__ = [
    "CertificateError",
    "PassPackager",
    "PassSigner",
    "make_test_chain",
    "package_pass",
    # card content (passes/storecard.py, strings.py, images.py)
    "Branding",
    "Goal",
    "ImageError",
    "StoreCard",
    "default_images",
    "pass_strings",
    "prepare_image",
    "store_card_json",
]


def __getattr__(name: str):
    """Import make_test_chain on first use, so `python -m passes.devcerts` runs without a runpy warning."""
    if name == "make_test_chain":
        from passes.devcerts import make_test_chain

        return make_test_chain
    raise AttributeError(f"module 'passes' has no attribute {name!r}")
