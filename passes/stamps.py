"""The stamp card's strip image: a row (or two) of stamps, the collected ones filled, in the program's colours and
with the program's stamp icon when one was uploaded. Made once per (stamps required, stamps collected, colours,
icon) and kept: a program has only so many counts."""

import math
from functools import lru_cache
from io import BytesIO

from PIL import Image, ImageDraw, ImageOps

from passes.images import IMAGE_BOXES, SCALES, image_file_name

MAX_STAMPS = 30  # a card with more stamps than this has no room to show them


def stamp_strip(required: int, collected: int, background: str, stamp: str,
                icon: bytes | None = None) -> dict[str, bytes]:
    """`{"strip.png": ..., "strip@2x.png": ..., "strip@3x.png": ...}`: `required` circles, `collected` of them
    filled with `stamp`, on `background` (colours `#RRGGBB`). `icon` (a PNG, best square, e.g. what
    `prepare_image("stamp", ...)` makes) marks each filled stamp: a transparent icon is cut out of the stamp in
    the background colour, an opaque one (a photo) fills the stamp's circle."""
    if not 1 <= required <= MAX_STAMPS or not 0 <= collected <= required:
        raise ValueError(f"required must be 1 to {MAX_STAMPS} and collected 0 to required")
    return dict(_strip(required, collected, background.upper(), stamp.upper(), icon))


@lru_cache(maxsize=512)
def _strip(required: int, collected: int, background: str, stamp: str,
           icon: bytes | None) -> tuple[tuple[str, bytes], ...]:
    source = Image.open(BytesIO(icon)).convert("RGBA") if icon else None
    return tuple((image_file_name("strip", scale), _draw(required, collected, background, stamp, scale, source))
                 for scale in SCALES)


def _draw(required: int, collected: int, background: str, stamp: str, scale: int,
          icon: Image.Image | None) -> bytes:
    width, height = (side * scale for side in IMAGE_BOXES["strip"])
    rows = 1 if required <= 6 else 2
    per_row = math.ceil(required / rows)
    cell_width, cell_height = width / per_row, height / rows
    radius = min(cell_width, cell_height) * 0.36
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    for n in range(required):
        row, column = divmod(n, per_row)
        in_row = min(per_row, required - row * per_row)  # the last row is centred when it is shorter
        x = (width - in_row * cell_width) / 2 + (column + 0.5) * cell_width
        y = (row + 0.5) * cell_height
        box = (x - radius, y - radius, x + radius, y + radius)
        if n < collected:
            draw.ellipse(box, fill=stamp)
            if icon is not None:
                _mark(image, icon, background, box)
        else:
            draw.ellipse(box, outline=stamp, width=max(2, round(radius / 8)))
    buffer = BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _mark(image: Image.Image, icon: Image.Image, background: str, box: tuple[float, ...]) -> None:
    """Put the icon on one filled stamp: a transparent icon as a cut-out in the background colour at 70% of the
    stamp (it reads as a punched mark in the program's colours), an opaque one cropped to the whole circle."""
    left, top, right, bottom = (round(edge) for edge in box)
    side = min(right - left, bottom - top)
    if icon.getchannel("A").getextrema()[0] < 255:
        inner = max(1, round(side * 0.7))
        mask = icon.getchannel("A").resize((inner, inner), Image.Resampling.LANCZOS)
        offset = (left + (side - inner) // 2, top + (side - inner) // 2)
        image.paste(Image.new("RGB", (inner, inner), background), offset, mask)
        return
    photo = ImageOps.fit(icon.convert("RGB"), (side, side), Image.Resampling.LANCZOS)
    circle = Image.new("L", (side, side), 0)
    ImageDraw.Draw(circle).ellipse((0, 0, side - 1, side - 1), fill=255)
    image.paste(photo, (left, top), circle)
