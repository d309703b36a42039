"""Turn a merchant's uploaded PNG/JPEG into the store-card images Wallet needs.

Uploads are hostile input: the format is sniffed from the bytes, the byte size and
pixel count are capped before any pixel is decoded, and every decoder failure
becomes an `ImageError` whose message can be shown to the merchant.
"""

from functools import cache
from importlib import resources
from io import BytesIO

from PIL import Image, ImageCms, ImageOps

# Apple: store cards use icon (required), logo and strip; the rewards-enrollment sheet shows a
# personalizationLogo of at most 150 x 40. Sizes in points.
IMAGE_BOXES = {"icon": (29, 29), "logo": (160, 50), "strip": (375, 123), "personalizationLogo": (150, 40)}
SCALES = (1, 2, 3)
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 36_000_000  # e.g. 6000 x 6000; well under Pillow's own bomb limit
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
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
    source = _decode(data, max(IMAGE_BOXES[kind]) * max(SCALES))
    return {
        image_file_name(kind, scale): _png_bytes(_render(kind, source, scale))
        for scale in SCALES
    }


def _decode(data: bytes, draft_side: int) -> Image.Image:
    """Check and decode an upload into an sRGB RGBA image."""
    _check_upload(data)
    try:
        image = Image.open(BytesIO(data), formats=tuple(_SIGNATURES.values()))
        _check_pixels(image.size)
        if image.format == "JPEG":  # decode big photos at 1/2..1/8 scale: less memory, faster
            image.draft("RGB", (draft_side, draft_side))
        image.load()
        return _to_srgb_rgba(ImageOps.exif_transpose(image))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_too_many_pixels_message()) from None
    except Exception as error:  # Pillow's decoders raise many types on malformed input
        raise ImageError("The file could not be read as a PNG or JPEG image.") from error


def _check_upload(data: bytes) -> None:
    """Size and magic bytes, before Pillow sees anything."""
    if not data:
        raise ImageError("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"The image is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    if not any(data.startswith(signature) for signature in _SIGNATURES):
        raise ImageError("Upload a PNG or JPEG image.")


def _check_pixels(size: tuple[int, int]) -> None:
    """Refuse decompression bombs from the header's dimensions, before decoding."""
    width, height = size
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise ImageError(_too_many_pixels_message())


def _too_many_pixels_message() -> str:
    """The merchant-facing text for an image with too many pixels."""
    return f"The image has too many pixels (at most {MAX_PIXELS // 1_000_000} megapixels)."


def _to_srgb_rgba(image: Image.Image) -> Image.Image:
    """Normalise colour: embedded profiles converted to sRGB, 16-bit grey scaled, RGBA out."""
    profile = image.info.get("icc_profile")
    if profile and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
            image = ImageCms.profileToProfile(
                image, BytesIO(profile), ImageCms.createProfile("sRGB"), outputMode=output_mode
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: keep the pixels as they are
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        image = image.point(lambda value: value / 256).convert("L")
    rgba = image.convert("RGBA")
    rgba.info = {}
    return rgba


def _render(kind: str, source: Image.Image, scale: int) -> Image.Image:
    """Fit one kind's box: icon padded to a square, logo inside its box, strip cropped to fill."""
    box_width, box_height = IMAGE_BOXES[kind]
    size = (box_width * scale, box_height * scale)
    if kind == "strip":
        return ImageOps.fit(source, size, Image.Resampling.LANCZOS)
    if kind == "icon":
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
