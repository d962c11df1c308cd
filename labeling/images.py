"""Image checks and statistics with Pillow: pure functions on bytes, no Django."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

ALLOWED_IMAGE_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"})


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; the message says why, for a person."""


@dataclass(frozen=True)
class ImageStats:
    """Statistics of one image: size in pixels, mean luma 0–255, 64-bit dHash (hex),
    SHA-256 of the bytes and the detected format."""

    width: int
    height: int
    mean_brightness: float
    perceptual_hash: str
    content_hash: str
    format: str


def open_checked(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """Open ``data`` as an image after checking its size in bytes and in pixels.

    Raises :class:`ImageRejected` for too many bytes, an unknown or disallowed format,
    a decompression bomb (more than ``max_pixels`` pixels) or a truncated file.
    """
    if len(data) > max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_IMAGE_FORMATS:
                raise ImageRejected(f"image format {image.format!r} is not accepted")
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"image is {width}×{height} = {width * height} pixels; "
                    f"the limit is {max_pixels} pixels"
                )
            image.verify()
        # verify() leaves the image unusable: open again to decode.
        image = Image.open(io.BytesIO(data))
        image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"image refused as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"not a readable image: {exc}") from exc
    return image


def difference_hash(image: Image.Image, size: int = 8) -> str:
    """64-bit difference hash (dHash) as 16 hex digits: near-duplicates differ in few bits."""
    gray = image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS)
    pixels = gray.tobytes()
    bits = 0
    for row in range(size):
        for col in range(size):
            left = pixels[row * (size + 1) + col]
            right = pixels[row * (size + 1) + col + 1]
            bits = (bits << 1) | (1 if left > right else 0)
    return f"{bits:016x}"


def compute_stats(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageStats:
    """Statistics of the image in ``data`` (see :class:`ImageStats`)."""
    image = open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    image_format = image.format or ""
    image = ImageOps.exif_transpose(image)
    luma = image.convert("L")
    return ImageStats(
        width=image.width,
        height=image.height,
        mean_brightness=round(float(ImageStat.Stat(luma).mean[0]), 3),
        perceptual_hash=difference_hash(image),
        content_hash=hashlib.sha256(data).hexdigest(),
        format=image_format,
    )


def make_thumbnail(data: bytes, *, size: tuple[int, int], max_bytes: int, max_pixels: int) -> bytes:
    """A JPEG thumbnail that fits in ``size`` (width, height in pixels)."""
    image = ImageOps.exif_transpose(open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels))
    image.thumbnail(size, Image.Resampling.LANCZOS)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()
