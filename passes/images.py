"""Turn a merchant's uploaded PNG/JPEG into the store-card images Wallet needs.

Uploads are hostile input: the format is sniffed from the bytes, the byte size and
dimensions are capped before any pixel is decoded, and every decoder failure
becomes an `ImageError` whose message can be shown to the merchant.

Memory is bounded too: a 150 KB PNG can claim a canvas of hundreds of megabytes. The
decoded image is the one large buffer; it is shrunk a band of rows at a time (so no
full-size RGBA, premultiplied or colour-managed copy is ever made), closed at once,
and the freed memory handed back to the operating system.
"""

import ctypes
from functools import cache
from importlib import resources
from io import BytesIO

from PIL import Image, ImageCms, ImageOps

# Apple: store cards use icon (required), logo and strip; the rewards-enrollment sheet shows a
# personalizationLogo of at most 150 x 40. Sizes in points. A stamp card's stamp icon is ours, not Apple's: it is
# drawn into the stamps of the strip (passes.stamps), never packaged as a file of its own.
IMAGE_BOXES = {"icon": (29, 29), "logo": (160, 50), "strip": (375, 123), "personalizationLogo": (150, 40),
               "stamp": (48, 48)}
UPLOAD_KINDS = ("logo", "icon", "strip", "stamp")  # what a merchant uploads; personalizationLogo comes from the logo
SCALES = (1, 2, 3)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_SIDE = 4096  # pixels; Apple's largest asset is the strip at 1125 x 369 (@3x)
MAX_DECODED_BYTES = MAX_SIDE * MAX_SIDE * 4  # 64 MB: the one large buffer a decode may hold (RGBA at MAX_SIDE)
_BAND_BYTES = 1024 * 1024  # RGBA rows converted and reduced at a time
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
_UNREADABLE = "The file could not be read as a PNG or JPEG image."
_DEFAULT_FILES = tuple(
    f"{kind}{suffix}.png" for kind in ("icon", "logo") for suffix in ("", "@2x", "@3x")
)


class ImageError(ValueError):
    """An upload we refuse; the message is meant for the merchant."""


def image_file_name(kind: str, scale: int) -> str:
    """Wallet's file name for a kind at a scale: `icon.png`, `icon@2x.png`, ..."""
    return f"{kind}.png" if scale == 1 else f"{kind}@{scale}x.png"


def prepare_image(kind: str, data: bytes) -> dict[str, bytes]:
    """`{"<kind>.png": ..., "<kind>@2x.png": ..., "<kind>@3x.png": ...}` from one upload."""
    if kind not in IMAGE_BOXES:
        raise ValueError(f"kind must be one of {', '.join(IMAGE_BOXES)}")
    box_width, box_height = IMAGE_BOXES[kind]
    source = _decode(data, (box_width * max(SCALES), box_height * max(SCALES)))
    try:
        return {image_file_name(kind, scale): _png_bytes(_render(kind, source, scale)) for scale in SCALES}
    finally:
        source.close()  # Pillow frees pixels on close(), not on leaving a `with` block
        _release_freed_memory()


def _decode(data: bytes, largest: tuple[int, int]) -> Image.Image:
    """Check and decode an upload into an upright sRGB RGBA image no smaller than `largest` needs."""
    _check_upload(data)
    try:
        image = Image.open(BytesIO(data), formats=tuple(_SIGNATURES.values()))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_too_large_message()) from None
    except Exception as error:  # Pillow's decoders raise many types on malformed input
        raise ImageError(_UNREADABLE) from error
    try:
        _check_dimensions(image.size)
        _check_jpeg_coefficients(image)
        if image.format == "JPEG":  # libjpeg decodes at 1/2..1/8 scale: the big buffer never exists
            image.draft("RGB", largest)
        image.load()
        shrunk = _shrink_to_srgb_rgba(image, _reduction_factor(image.size, largest))
        shrunk.info = image.info  # only for the orientation exif_transpose reads
        ImageOps.exif_transpose(shrunk, in_place=True)
        shrunk.info = {}
        return shrunk
    except ImageError:
        raise
    except Exception as error:
        raise ImageError(_UNREADABLE) from error
    finally:
        image.close()  # the decoded pixels: the one large buffer


def _check_upload(data: bytes) -> None:
    """Size and magic bytes, before Pillow sees anything."""
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"The image is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    if not any(data.startswith(signature) for signature in _SIGNATURES):
        raise ImageError("Upload a PNG or JPEG image.")


def _check_dimensions(size: tuple[int, int]) -> None:
    """Refuse decompression bombs from the header's dimensions, before decoding."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(_UNREADABLE)
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageError(_too_large_message())


def _check_jpeg_coefficients(image: Image.Image) -> None:
    """A progressive JPEG makes libjpeg keep every DCT coefficient (2 bytes a sample, at full resolution
    whatever the draft scale), so it may be refused below MAX_SIDE: 4:2:0 fits, 4:4:4 or CMYK may not."""
    if image.format != "JPEG" or not image.info.get("progressive"):
        return
    width, height = image.size
    max_h = max(h for _, h, _, _ in image.layer)
    max_v = max(v for _, _, v, _ in image.layer)
    samples = sum(-(-width * h // max_h) * -(-height * v // max_v) for _, h, v, _ in image.layer)
    if 2 * samples > MAX_DECODED_BYTES:
        limit = MAX_DECODED_BYTES // (2 * samples / (width * height)) / 1_000_000
        raise ImageError(f"The image is too large: a progressive JPEG with these colour settings may have at most"
                         f" {limit:.1f} megapixels; save it smaller, as a baseline JPEG or as a PNG.")


def _too_large_message() -> str:
    """The merchant-facing text for an image with too many pixels."""
    return f"The image is too large: at most {MAX_SIDE} x {MAX_SIDE} pixels."


def _reduction_factor(size: tuple[int, int], largest: tuple[int, int]) -> int:
    """The largest whole factor that keeps the image at least `largest` on both sides, so every
    later resize still scales down (fit, pad and contain never scale by more than that)."""
    return max(1, min(size[0] // largest[0], size[1] // largest[1]))


def _shrink_to_srgb_rgba(image: Image.Image, factor: int) -> Image.Image:
    """`image` in sRGB RGBA, reduced by `factor`, built from bands of rows: besides the decoded image and
    the result only one band's copies exist at a time (a whole-image convert would be another 64 MB each)."""
    width, height = image.size
    result = Image.new("RGBA", (-(-width // factor), -(-height // factor)))
    to_srgb = _srgb_transform(image)
    band_rows = max(factor, _BAND_BYTES // (4 * width) // factor * factor)
    for top in range(0, height, band_rows):
        band = _to_srgb_rgba(image.crop((0, top, width, min(top + band_rows, height))), to_srgb)
        result.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
    return result


def _srgb_transform(image: Image.Image) -> ImageCms.ImageCmsTransform | None:
    """Embedded profile -> sRGB, built once per upload; None without a usable profile."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return None
    try:
        output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.buildTransform(BytesIO(profile), ImageCms.createProfile("sRGB"), image.mode, output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None  # a broken profile: keep the pixels as they are


def _to_srgb_rgba(image: Image.Image, to_srgb: ImageCms.ImageCmsTransform | None) -> Image.Image:
    """Normalise one band's colour: embedded profile converted to sRGB, 16-bit grey scaled, RGBA out."""
    if to_srgb is not None:
        image = to_srgb.apply(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        image = image.point(lambda value: value / 256).convert("L")
    return image.convert("RGBA")


def _release_freed_memory() -> None:
    """Hand freed pixel buffers back to the OS: glibc keeps large freed blocks in its arenas, so a worker
    that once decoded a big upload would otherwise stay that big. A no-op where malloc_trim is missing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS, Windows)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _render(kind: str, source: Image.Image, scale: int) -> Image.Image:
    """Fit one kind's box: icon and stamp padded to a square, logo inside its box, strip cropped to fill."""
    box_width, box_height = IMAGE_BOXES[kind]
    size = (box_width * scale, box_height * scale)
    if kind == "strip":
        return ImageOps.fit(source, size, Image.Resampling.LANCZOS)
    if kind in ("icon", "stamp"):
        return ImageOps.pad(source, size, Image.Resampling.LANCZOS, color=(0, 0, 0, 0))
    width, height = _fitted_size(source.size, (box_width, box_height))
    return source.resize((width * scale, height * scale), Image.Resampling.LANCZOS)


def _fitted_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """A logo's @1x size: the largest that fits its box keeping the aspect ratio."""
    width, height = size
    ratio = min(box[0] / width, box[1] / height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _png_bytes(image: Image.Image) -> bytes:
    """An optimised PNG with no metadata (same input, same bytes); RGB when fully opaque."""
    if image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")
    image.info = {}
    buffer = BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def default_images() -> dict[str, bytes]:
    """Punchpass's own icon and logo at @1x/@2x/@3x, for programs without uploads."""
    return dict(_default_images())


@cache
def _default_images() -> tuple[tuple[str, bytes], ...]:
    """Read the packaged artwork once."""
    assets = resources.files("passes") / "assets"
    return tuple((name, (assets / name).read_bytes()) for name in _DEFAULT_FILES)
