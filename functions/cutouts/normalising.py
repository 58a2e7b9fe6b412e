"""Turn an image as people have it into one the gateway takes, and spot one that is already cut out.

The gateway is only known to take JPEG and PNG (Bria documents just those) and says nothing about
EXIF orientation. So anything else, and anything the gateway might misread (an EXIF rotation, CMYK,
16 bits a sample, a pixel count over the cap), becomes an upright 8-bit PNG (when it has alpha) or
JPEG (when it is opaque) before submission; the original is never modified. Which uploads need it
is decided from the first bytes alone (``needs_normalising``), so the common upright 8-bit JPEG
pays for no image library at all.

Pillow and pillow-heif are imported inside the functions (the submit path imports this module).
EXIF (camera, GPS) is not carried into the normalised copy: the orientation is applied to the
pixels, and the rest is nobody's business at the gateway. The ICC profile is kept for RGB images.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cutouts import image_sniff
from cutouts.image_sniff import AVIF, BMP, GIF, HEIF, JPEG, PNG, TIFF, WEBP

if TYPE_CHECKING:
    from PIL import Image

ACCEPTED = (JPEG, PNG, WEBP, HEIF, AVIF, TIFF, BMP, GIF)
JPEG_QUALITY = 95  # the gateway's input: near-lossless, 4:4:4 so thin edges keep their colour
PNG_COMPRESS_LEVEL = 3
# already_cut_out: an image counts as cut out when its border is transparent on at least three of its
# four sides. A photo has an opaque border (even when saved with an alpha channel, or with rounded
# corners); a cutout is transparent all round, except that its subject may stand on, or be cut off
# by, one edge (a product on the floor, a portrait at the waist). A side counts as transparent when
# 98% of its pixels are, which forgives a few stray pixels (a shadow, antialiasing at a corner).
# Wrongly skipping the gateway gives a wrong result; wrongly calling it costs one call: so be strict.
CUT_OUT_SIDE_SHARE = 0.98
CUT_OUT_SIDES = 3
CUT_OUT_TRANSPARENT_BELOW = 16  # alpha under this is background (models leave faint haze)
CUT_OUT_SUBJECT_ALPHA = 128  # ...and some pixel must be at least this opaque, or there is no subject

ADVICE: dict[str, str] = {
    "unsupported-format": "Send JPEG, PNG, WebP, HEIC/HEIF, AVIF, TIFF, BMP or GIF.",
    "too-many-pixels": "The image is over the pixel cap and the stack is set to fail rather than downscale "
    "(oversize): downscale it, or set oversize to downscale.",
    "undecodable": "The file says it is an image but cannot be decoded: it is corrupt or truncated; upload it again.",
}


class NormaliseError(Exception):
    """The upload cannot become an image the gateway takes; ``reason`` keys the advice."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Normalised:
    data: bytes
    content_type: str
    width: int
    height: int
    downscaled: bool


def needs_normalising(head: bytes, max_pixels: int | None = None) -> bool:
    """Whether an upload must be normalised before submission, from its first bytes and no library.

    False only for what the gateway takes as uploaded: an 8-bit gray or colour JPEG that is upright,
    or an 8-bit gray or RGB PNG (no alpha to check for an existing cutout), within the pixel cap
    when one is given and the header declares the size.
    """
    return not _gateway_ready(head, max_pixels, alpha=False)


def _gateway_ready(head: bytes, max_pixels: int | None, alpha: bool) -> bool:
    """An upright 8-bit JPEG or PNG (with ``alpha``: also gray+alpha or RGBA PNG) within the cap."""
    media = image_sniff.media_type_of(head)
    if media == JPEG:
        frame = image_sniff.jpeg_frame(head)
        ready = frame is not None and frame.precision == 8 and frame.components in (1, 3) and frame.orientation == 1
    elif media == PNG:
        header = image_sniff.png_header(head)
        colour_types = (0, 2, 4, 6) if alpha else (0, 2)
        ready = header is not None and header.bit_depth == 8 and header.colour_type in colour_types
        ready = ready and header is not None and not header.has_exif
    else:
        return False
    if ready and max_pixels is not None:
        pixels = image_sniff.declared_pixels(head)
        ready = pixels is not None and pixels <= max_pixels
    return ready


def normalise(data: bytes, max_pixels: int, oversize: str = "downscale") -> Normalised:
    """An upright 8-bit PNG (alpha) or JPEG (opaque) of the first frame, within the pixel cap."""
    from PIL import Image

    if _gateway_ready(data[: image_sniff.HEAD_BYTES], max_pixels, alpha=True):
        # only here to have its alpha checked (not cut out): the gateway takes it as it is, and
        # decoding and re-encoding it would cost two frames of memory for nothing
        header = image_sniff.png_header(data) if data.startswith(b"\x89PNG") else None
        size = _declared_size(data)
        complete = b"IEND" in data[-16:] if header is not None else b"\xff\xd9" in data[-64:]
        if size is not None and complete:  # a truncated file is decoded below, and reported
            return Normalised(data, JPEG if header is None else PNG, size[0], size[1], False)
    image = _open(data)
    width, height = image.size
    too_many = width * height > max_pixels
    if too_many and oversize == "fail":
        raise NormaliseError(
            "too-many-pixels", f"the image is {width}x{height} pixels; the cap is {max_pixels} (oversize: fail)"
        )
    target = _fit(image.size, max_pixels)
    if too_many and image.format == "JPEG":
        image.draft(image.mode, target)  # decode at 1/2, 1/4 or 1/8 scale: less memory and time
    icc = image.info.get("icc_profile") if image.mode not in ("CMYK", "YCbCr", "LAB") else None
    pixels = _upright(image)
    pixels = _eight_bit(pixels)
    if too_many:
        target = _fit(pixels.size, max_pixels)
        pixels = pixels.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
    buffer = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if pixels.mode in ("RGBA", "LA"):
        pixels.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL, **extra)
        content_type = PNG
    else:
        pixels.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0, **extra)
        content_type = JPEG
    return Normalised(buffer.getvalue(), content_type, pixels.width, pixels.height, too_many)


def already_cut_out(
    data: bytes,
    side_share: float = CUT_OUT_SIDE_SHARE,
    transparent_below: int = CUT_OUT_TRANSPARENT_BELOW,
    sides: int = CUT_OUT_SIDES,
) -> bool:
    """True when the image's own alpha already separates a subject from a transparent background.

    Only images with an alpha channel are decoded (a JPEG is answered from its first bytes).
    """
    if image_sniff.media_type_of(data[:64]) == JPEG:
        return False
    try:
        image = _open(data)
        if not _has_alpha(image):
            return False
        image.load()
    except (NormaliseError, OSError, SyntaxError, ValueError):
        return False
    # The EXIF orientation is not applied: turning or flipping maps the border onto itself, and
    # "three of four sides" does not care which side is which. That saves a copy of the frame.
    width, height = image.size
    if width < 3 or height < 3:
        return False

    def alpha(box: tuple[int, int, int, int]) -> Image.Image:
        part = image.crop(box)
        return (part if part.mode == "RGBA" else part.convert("RGBA")).getchannel("A")

    edges = [(0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height), (width - 1, 0, width, height)]
    transparent_sides = 0
    for edge in edges:
        histogram = alpha(edge).histogram()
        if sum(histogram[:transparent_below]) >= side_share * sum(histogram):
            transparent_sides += 1
    if transparent_sides < sides:
        return False
    # ...and there is a subject: some pixel at least half opaque (strip by strip, no full-size copy)
    return any(
        max(alpha((0, top, width, min(top + 256, height))).histogram()[CUT_OUT_SUBJECT_ALPHA:]) > 0
        for top in range(0, height, 256)
    )


def master_from_cut_out(data: bytes, max_pixels: int) -> bytes:
    """The RGBA PNG master of an input that is already cut out: upright, 8-bit, within the cap."""
    from PIL import Image

    head = data[: image_sniff.HEAD_BYTES]
    header = image_sniff.png_header(head) if image_sniff.media_type_of(head) == PNG else None
    complete = b"IEND" in data[-16:]
    if header is not None and header.colour_type == 6 and complete and _gateway_ready(head, max_pixels, alpha=True):
        return data  # already an upright 8-bit RGBA PNG within the cap: it is the master as it is
    image = _open(data)
    if image.size[0] * image.size[1] > max_pixels and image.format == "JPEG":
        image.draft(image.mode, _fit(image.size, max_pixels))
    master = _eight_bit(_upright(image))
    if master.mode != "RGBA":
        master = master.convert("RGBA")
    if master.width * master.height > max_pixels:
        master = master.resize(_fit(master.size, max_pixels), Image.Resampling.LANCZOS, reducing_gap=2.0)
    buffer = io.BytesIO()
    master.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


# ---- helpers ------------------------------------------------------------------------------------

_heif_registered = False


def _open(data: bytes) -> Image.Image:
    """Open (lazily: header only) the first frame of any accepted format."""
    global _heif_registered
    from PIL import Image, UnidentifiedImageError

    media = image_sniff.media_type_of(data[:4096])
    if media not in ACCEPTED:
        raise NormaliseError("unsupported-format", "not an image type we accept (" + (media or "unknown") + ")")
    if media == HEIF and not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True
    try:
        image = Image.open(io.BytesIO(data))
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
    except Image.DecompressionBombError as exc:
        raise NormaliseError("too-many-pixels", str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NormaliseError("undecodable", f"the {media} cannot be read: {exc}") from exc
    return image


def _upright(image: Image.Image) -> Image.Image:
    """Decode and apply the EXIF orientation, so pixels look the way a browser shows the original.

    An upright image is returned as it is (``exif_transpose`` would copy it: one more frame).
    """
    from PIL import ImageOps

    try:
        orientation = image.getexif().get(0x0112, 1)
        upright = image if orientation == 1 else ImageOps.exif_transpose(image)
        upright.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise NormaliseError("undecodable", f"the image cannot be decoded: {exc}") from exc
    return upright


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    )


def _eight_bit(image: Image.Image) -> Image.Image:
    """RGB, RGBA or L at 8 bits a sample; alpha that is opaque everywhere is dropped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit gray: scale 0-65535 to 0-255 (convert("L") would clip everything above 255 to white)
        image = image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    elif _has_alpha(image):
        if image.mode != "RGBA":
            image = image.convert("RGBA")
        if image.getextrema()[3] == (255, 255):  # type: ignore[misc]  # per band, no copy of the alpha
            image = image.convert("RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, P without transparency
    return image


def _declared_size(data: bytes) -> tuple[int, int] | None:
    import struct

    if data.startswith(b"\x89PNG") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    width_or_none, height_or_none = image_sniff._jpeg_size(data[: image_sniff.HEAD_BYTES])
    return None if width_or_none is None or height_or_none is None else (width_or_none, height_or_none)


def _fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    width, height = size
    if width * height <= max_pixels:
        return size
    scale = math.sqrt(max_pixels / (width * height))
    fitted = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    while fitted[0] * fitted[1] > max_pixels:  # floating point: make sure the cap holds
        fitted = (fitted[0] - 1, fitted[1]) if fitted[0] >= fitted[1] else (fitted[0], fitted[1] - 1)
    return fitted
