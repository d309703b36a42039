import os
import random
import struct
import subprocess
import sys
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from passes.images import MAX_SIDE, MAX_UPLOAD_BYTES, ImageError, default_images, prepare_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def photo(size=(400, 200), mode="RGB") -> Image.Image:
    """A gradient, so resizing and compression have real work to do."""
    return Image.linear_gradient("L").resize(size).convert(mode)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    checksum = struct.pack(">I", zlib.crc32(kind + payload))
    return struct.pack(">I", len(payload)) + kind + payload + checksum


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims a huge canvas: a decompression bomb's calling card."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + png_chunk(b"IEND", b""))


def png_chunk_types(data: bytes) -> list[bytes]:
    types, position = [], len(PNG_SIGNATURE)
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        types.append(data[position + 4:position + 8])
        position += length + 12
    return types


def sizes(files: dict[str, bytes]) -> dict[str, tuple[int, int]]:
    return {name: Image.open(BytesIO(data)).size for name, data in files.items()}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("icon", {"icon.png": (29, 29), "icon@2x.png": (58, 58), "icon@3x.png": (87, 87)}),
        ("strip",
         {"strip.png": (375, 123), "strip@2x.png": (750, 246), "strip@3x.png": (1125, 369)}),
        ("logo", {"logo.png": (100, 50), "logo@2x.png": (200, 100), "logo@3x.png": (300, 150)}),
    ],
)
def test_jpeg_upload_becomes_pngs_of_the_exact_scaled_sizes(kind, expected):
    files = prepare_image(kind, encode(photo((400, 200)), "JPEG"))

    assert sizes(files) == expected
    assert all(data.startswith(PNG_SIGNATURE) for data in files.values())


def test_wide_logo_fits_inside_the_160_by_50_box():
    files = prepare_image("logo", encode(photo((1600, 100), "RGBA"), "PNG"))

    assert sizes(files)["logo.png"] == (160, 10)
    assert sizes(files)["logo@3x.png"] == (480, 30)


def test_icon_from_a_wide_image_is_padded_to_a_transparent_square():
    files = prepare_image("icon", encode(photo((300, 100)), "JPEG"))

    icon = Image.open(BytesIO(files["icon@3x.png"]))

    assert icon.mode == "RGBA"
    assert icon.getpixel((0, 0))[3] == 0
    assert icon.getpixel((43, 43))[3] == 255


def test_strip_is_cropped_to_fill_its_box_without_transparency():
    files = prepare_image("strip", encode(photo((300, 300)), "JPEG"))

    strip = Image.open(BytesIO(files["strip.png"]))

    assert strip.size == (375, 123)
    assert strip.mode == "RGB"


def test_jpeg_exif_rotation_is_applied_before_fitting():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    upload = encode(photo((200, 100)), "JPEG", exif=exif)

    assert sizes(prepare_image("logo", upload))["logo.png"] == (25, 50)


def test_sixteen_bit_grey_png_keeps_its_tone():
    grey = Image.new("I;16", (60, 60), 32768)

    icon = Image.open(BytesIO(prepare_image("icon", encode(grey, "PNG"))["icon.png"]))

    assert 120 <= icon.getpixel((14, 14))[0] <= 135


def test_same_upload_gives_the_same_bytes_and_no_metadata_chunks():
    upload = encode(photo(), "PNG")

    first, second = prepare_image("logo", upload), prepare_image("logo", upload)

    assert first == second
    for data in first.values():
        assert set(png_chunk_types(data)) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


@pytest.mark.parametrize(
    "upload",
    [b"", b"hello, not an image", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", b"%PDF-1.7\n"],
    ids=["empty", "text", "gif", "pdf"],
)
def test_non_png_or_jpeg_upload_is_an_image_error(upload):
    with pytest.raises(ImageError):
        prepare_image("logo", upload)


def test_truncated_png_is_an_image_error():
    upload = encode(photo((300, 300)), "PNG")

    with pytest.raises(ImageError, match="could not be read"):
        prepare_image("icon", upload[: len(upload) // 2])


def test_truncated_jpeg_is_an_image_error():
    upload = encode(photo((300, 300)), "JPEG")

    with pytest.raises(ImageError, match="could not be read"):
        prepare_image("icon", upload[: len(upload) // 2])


@pytest.mark.parametrize(
    ("width", "height"),
    [(30000, 30000), (10000, 10000), (7000, 7000), (70000, 1)],
    ids=["beyond-pillow-error", "pillow-warning-range", "above-our-cap", "missing-pixel-data"],
)
def test_png_header_claiming_huge_dimensions_is_an_image_error(width, height):
    upload = png_header_claiming(width, height)

    assert len(upload) < 200
    with pytest.raises(ImageError, match="too large|could not be read"):
        prepare_image("strip", upload)


@pytest.mark.parametrize(("width", "height"), [(MAX_SIDE + 1, 10), (10, MAX_SIDE + 1)])
def test_side_longer_than_4096_pixels_is_refused_naming_the_limit(width, height):
    with pytest.raises(ImageError, match="4096"):
        prepare_image("strip", png_header_claiming(width, height))


def test_progressive_jpeg_whose_coefficients_exceed_64_mb_is_refused():
    upload = encode(Image.new("RGB", (MAX_SIDE, MAX_SIDE)), "JPEG", progressive=True, subsampling=0)

    with pytest.raises(ImageError, match="progressive JPEG"):
        prepare_image("strip", upload)


def largest_png() -> bytes:
    """A valid 4096 x 4096 RGBA PNG of a few hundred KB, compressed a row at a time (never 64 MB here)."""
    row = b"\x00" + bytes((x * 7 + channel) % 256 for x in range(MAX_SIDE) for channel in range(4))
    compressor = zlib.compressobj(6)
    pixels = b"".join(compressor.compress(row) for _ in range(MAX_SIDE)) + compressor.flush()
    header = struct.pack(">IIBBBBB", MAX_SIDE, MAX_SIDE, 8, 6, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def largest_jpeg(**options) -> bytes:
    return encode(Image.new("RGB", (MAX_SIDE, MAX_SIDE), (200, 30, 40)), "JPEG", **options)


# Runs in a fresh interpreter. ru_maxrss is no use there: after fork and exec it starts from the parent's
# (pytest's) peak. VmHWM is this process's own, and clear_refs "5" resets it to the current RSS.
MEASURE_UPLOADS = r"""
import sys
from passes.images import prepare_image

def status_mb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024

data = open(sys.argv[1], "rb").read()
try:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
except OSError:
    pass  # the peak then includes start-up too: a stricter test
before = status_mb("VmRSS")
for _ in range(2):
    prepare_image("strip", data)
print(status_mb("VmHWM") - before, status_mb("VmRSS") - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from Linux's /proc")
@pytest.mark.parametrize("make_upload", [largest_png, largest_jpeg, lambda: largest_jpeg(progressive=True)],
                         ids=["png-rgba", "jpeg", "progressive-jpeg"])
def test_largest_accepted_upload_peaks_under_100_mb_and_keeps_nothing(tmp_path, make_upload):
    upload = tmp_path / "upload"
    upload.write_bytes(make_upload())
    project_root = Path(__file__).resolve().parents[2]

    result = subprocess.run([sys.executable, "-c", MEASURE_UPLOADS, str(upload)], cwd=project_root,
                            env={**os.environ, "PYTHONPATH": str(project_root)},
                            capture_output=True, text=True, timeout=60, check=True)

    extra_peak_mb, kept_mb = map(float, result.stdout.split())
    assert extra_peak_mb < 100, f"peak {extra_peak_mb:.0f} MB above the RSS before the uploads"
    assert kept_mb < 10, f"{kept_mb:.0f} MB still resident after the uploads"


def test_upload_over_the_byte_limit_is_refused_before_decoding():
    upload = PNG_SIGNATURE + b"\x00" * MAX_UPLOAD_BYTES

    with pytest.raises(ImageError, match="MB"):
        prepare_image("logo", upload)


def test_corrupted_uploads_only_ever_raise_image_error():
    originals = [encode(photo((120, 80)), "PNG"), encode(photo((120, 80)), "JPEG")]
    rng = random.Random(20240601)

    for _ in range(150):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        try:
            prepare_image("icon", bytes(data[: rng.randint(20, len(data))]))
        except ImageError:
            pass


def test_unknown_image_kind_is_rejected():
    with pytest.raises(ValueError, match="kind"):
        prepare_image("thumbnail", encode(photo(), "PNG"))


def test_default_images_hold_icon_and_logo_at_three_scales():
    images = default_images()

    assert sizes(images) == {
        "icon.png": (29, 29), "icon@2x.png": (58, 58), "icon@3x.png": (87, 87),
        "logo.png": (40, 40), "logo@2x.png": (80, 80), "logo@3x.png": (120, 120),
    }
    images["icon.png"] = b"tampered"
    assert default_images()["icon.png"].startswith(PNG_SIGNATURE)
