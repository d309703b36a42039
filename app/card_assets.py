"""What every card of one program design shares, built once per design and process: the program's images and
strings hashed and zip-encoded (`passes.PassPackager`), so per member only pass.json, the manifest and the
signature are new."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.orm import Session

from app.domain.programs import program_images
from app.models import Program
from passes import PassPackager
from passes.images import default_images, image_file_name, prepare_image
from passes.strings import pass_strings

STAMP_ICON_PREFIX = "stamp"  # the uploaded stamp icon's files: stamp.png, stamp@2x.png, stamp@3x.png
STAMP_ICON = image_file_name("stamp", 3)  # the one drawn into the strips (scaled down per strip size)


class CardAssetsCache:
    """A bounded map (program id, design version) -> CardAssets, shared by the threads of one process."""

    def __init__(self, size: int = 128):
        self._size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, session: Session, program: Program) -> CardAssets:
        key = (program.id, program.design_version)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        assets = CardAssets.build(card_images(session, program), program.locales)
        with self._lock:
            self._items[key] = assets
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return assets


@dataclass(frozen=True)
class CardAssets:
    """What every card of one program design shares: the packaged images and strings, the logo in Apple's
    smaller personalization size (made on first use: most programs never need it) and a stamp card's uploaded
    stamp icon (drawn into each card's strip, app/cards.py; never a file of the pass)."""

    packager: PassPackager
    logo: bytes
    stamp_icon: bytes | None = None

    @classmethod
    def build(cls, images: dict[str, bytes], locales: list[str]) -> CardAssets:
        packaged = {name: data for name, data in images.items() if not name.startswith(STAMP_ICON_PREFIX)}
        return cls(PassPackager({**packaged, **pass_strings(locales)}), images["logo@3x.png"],
                   images.get(STAMP_ICON))

    @cached_property
    def personalization_logos(self) -> dict[str, bytes]:
        return prepare_image("personalizationLogo", self.logo)


def card_images(session: Session, program: Program) -> dict[str, bytes]:
    """The program's uploaded images over Punchpass's default icon and logo. A stamp card's strip is its
    stamps, made per card (app/cards.py), so an uploaded strip is left out."""
    images = {**default_images(), **program_images(session, program.id)}
    if program.type == "stamps":
        images = {name: data for name, data in images.items() if not name.startswith("strip")}
    return images
