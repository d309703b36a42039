"""QR codes as SVG (segno, pure Python): the pairing code's link for a till, a new member's card link at the
counter. SVG scales to any screen and is served by Punchpass itself, like every asset of its pages."""

from __future__ import annotations

import io

import segno


def qr_svg(text: str, scale: int = 8) -> str:
    """A standalone SVG document, black on white with the quiet zone the standard asks for (4 modules)."""
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=scale, border=4, xmldecl=False,
                                     svgns=True, title=None, dark="#000", light="#fff")
    return out.getvalue().decode()
