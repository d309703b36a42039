"""The stamp card's strip image: a row (or two) of stamps, the collected ones filled, in the program's colours.
Made once per (stamps required, stamps collected, colours) and kept: a program has only so many counts."""

import math
from functools import lru_cache
from io import BytesIO

from PIL import Image, ImageDraw

from passes.images import IMAGE_BOXES, SCALES, image_file_name

MAX_STAMPS = 30  # a card with more stamps than this has no room to show them


def stamp_strip(required: int, collected: int, background: str, stamp: str) -> dict[str, bytes]:
    """`{"strip.png": ..., "strip@2x.png": ..., "strip@3x.png": ...}`: `required` circles, `collected` of them
    filled with `stamp`, on `background` (colours `#RRGGBB`)."""
    if not 1 <= required <= MAX_STAMPS or not 0 <= collected <= required:
        raise ValueError(f"required must be 1 to {MAX_STAMPS} and collected 0 to required")
    return dict(_strip(required, collected, background.upper(), stamp.upper()))


@lru_cache(maxsize=512)
def _strip(required: int, collected: int, background: str, stamp: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((image_file_name("strip", scale), _draw(required, collected, background, stamp, scale))
                 for scale in SCALES)


def _draw(required: int, collected: int, background: str, stamp: str, scale: int) -> bytes:
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
        else:
            draw.ellipse(box, outline=stamp, width=max(2, round(radius / 8)))
    buffer = BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
