"""Frames for Chromium's fake camera: a QR code on white, as a Y4M video (what `--use-file-for-fake-video-capture`
plays in a loop). The page decodes it like a real camera's picture, through jsQR or BarcodeDetector."""

from __future__ import annotations

from pathlib import Path

import segno
from PIL import Image

WIDTH, HEIGHT = 640, 480
FRAMES = 2


def qr_frame(text: str) -> Image.Image:
    """A grey-scale frame: the QR code (4-module quiet zone) centred, about two thirds of the height; blank when
    there is no text."""
    frame = Image.new("L", (WIDTH, HEIGHT), 255)
    if text:
        matrix = segno.make(text, error="m").matrix
        size = len(matrix) + 8
        code = Image.new("L", (size, size), 255)
        code.putdata([0 if (0 <= y - 4 < len(matrix) and 0 <= x - 4 < len(matrix) and matrix[y - 4][x - 4]) else 255
                      for y in range(size) for x in range(size)])
        side = (HEIGHT * 2 // 3) // size * size
        code = code.resize((side, side), Image.NEAREST)
        frame.paste(code, ((WIDTH - side) // 2, (HEIGHT - side) // 2))
    return frame


def write_y4m(path: Path, text: str) -> None:
    """Y4M 4:2:0: per frame the luma plane, then both chroma planes at quarter size (128: no colour)."""
    luma = qr_frame(text).tobytes()
    chroma = bytes([128]) * (WIDTH // 2 * HEIGHT // 2 * 2)
    header = f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(header + b"".join(b"FRAME\n" + luma + chroma for _ in range(FRAMES)))
    tmp.replace(path)  # a camera opening the file meanwhile reads the old one or the new one, never half
