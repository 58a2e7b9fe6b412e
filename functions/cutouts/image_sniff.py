"""Decide from its bytes whether an object is an image the gateway can take.

Needs only the head and tail of the object: source_reader hands them over from the one read
that also hashes it (or, with de-duplication off, from a ranged GET of the head and, for a large
object, one of the tail). Pillow is not in the Lambda runtime; these checks need none.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from cutouts.settings_table import BY_ATTR

HEAD_BYTES = 64 * 1024


def _key(attr: str) -> str:
    return str(BY_ATTR[attr].key)


TAIL_BYTES = 1024

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
HEIF = "image/heif"  # HEIC and HEIF: iPhone photos
AVIF = "image/avif"
TIFF = "image/tiff"
BMP = "image/bmp"
GIF = "image/gif"
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
AVIF_BRANDS = (b"avif", b"avis")


class RejectedImage(ValueError):
    """The object is not something we will pay the gateway to process."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImageInfo(NamedTuple):
    media_type: str
    width: int | None
    height: int | None


def sniff_image(head: bytes, tail: bytes, size: int, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Return what the image is, or raise RejectedImage saying why not."""
    if size == 0:
        raise RejectedImage("empty-file", "the file is empty (0 bytes)")
    if size > max_bytes:
        raise RejectedImage(
            "too-large", f"the file is {size} bytes; the limit is {max_bytes} bytes ({_key('max_image_bytes')})"
        )
    if head.startswith(b"\xff\xd8\xff"):
        info = ImageInfo(JPEG, *_jpeg_size(head))
        if b"\xff\xd9" not in tail[-64:]:
            raise RejectedImage("truncated-image", "the JPEG has no end-of-image marker: it is truncated")
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise RejectedImage("truncated-image", "the PNG has no header chunk: it is truncated")
        info = ImageInfo(PNG, *struct.unpack(">II", head[16:24]))
        if b"IEND" not in tail[-16:]:
            raise RejectedImage("truncated-image", "the PNG has no IEND chunk: it is truncated")
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        declared = struct.unpack("<I", head[4:8])[0] + 8
        if declared > size:
            raise RejectedImage("truncated-image", f"the WebP declares {declared} bytes but has {size}")
        info = ImageInfo(WEBP, *_webp_size(head))
    else:
        raise RejectedImage("unsupported-type", f"not a supported image ({_describe(head)}); send JPEG, PNG or WebP")
    if info.width is not None and info.height is not None:
        if info.width == 0 or info.height == 0:
            raise RejectedImage("truncated-image", "the image declares zero width or height")
        if info.width * info.height > max_pixels:
            raise RejectedImage(
                "too-large",
                f"the image is {info.width}x{info.height} pixels; "
                f"the limit is {max_pixels} ({_key('max_image_pixels')})",
            )
    return info


def _describe(head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return "it is a PDF"
    if head.startswith(b"GIF8"):
        return "it is a GIF"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "it is HEIC/AVIF"
    sample = head[:512]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        return "it is text"
    return "unknown file signature"


def _jpeg_size(head: bytes) -> tuple[int | None, int | None]:
    """Walk the JPEG markers to the start-of-frame, which holds the dimensions."""
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            return None, None
        marker = head[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", head[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None, None


def _webp_size(head: bytes) -> tuple[int | None, int | None]:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        return width, height
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None, None


# ---- what normalising needs to know, from the head alone ------------------------------------------


def media_type_of(head: bytes) -> str | None:
    """The image type a file's first bytes announce, among every type we accept; None for others."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp":
        # the major brand decides; a generic one (mif1, msf1) defers to the compatible brands
        box_end = min(int.from_bytes(head[0:4], "big"), len(head))
        brands = [head[8:12]] + [head[i : i + 4] for i in range(16, box_end - 3, 4)]
        for brand in brands:
            if brand in AVIF_BRANDS:
                return AVIF
            if brand in HEIF_BRANDS and brand not in (b"mif1", b"msf1"):
                return HEIF
        return HEIF if any(b in HEIF_BRANDS for b in brands) else None
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head[:2] == b"BM" and len(head) >= 26:
        return BMP
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    return None


class JpegFrame(NamedTuple):
    precision: int  # bits per sample: 8, or 12 in some medical/scientific JPEGs
    components: int  # 1 gray, 3 YCbCr, 4 CMYK/YCCK
    orientation: int  # EXIF Orientation, 1 (upright) when absent


def jpeg_frame(head: bytes) -> JpegFrame | None:
    """Precision, components and EXIF orientation of a JPEG, from the markers before its start-of-frame."""
    orientation = 1
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", head[i + 2 : i + 4])[0]
        if marker == 0xE1 and head[i + 4 : i + 10] == b"Exif\x00\x00":
            orientation = _tiff_orientation(head[i + 10 : i + 2 + length])
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 10 > len(head):
                return None
            return JpegFrame(head[i + 4], head[i + 9], orientation)
        elif marker == 0xDA:  # start of scan before any frame: not a JPEG we understand
            return None
        i += 2 + length
    return None


def _tiff_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of IFD0 in an EXIF (TIFF) block; 1 when absent or unreadable."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return 1
    count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
    for n in range(count):
        entry = ifd + 2 + 12 * n
        if entry + 12 > len(tiff):
            return 1
        tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
        if tag == 0x0112 and kind == 3:  # SHORT
            value = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


class PngHeader(NamedTuple):
    bit_depth: int
    colour_type: int  # 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
    has_exif: bool  # an eXIf chunk before the image data (may carry an orientation)


def png_header(head: bytes) -> PngHeader | None:
    if len(head) < 26 or head[12:16] != b"IHDR":
        return None
    data_at = head.find(b"IDAT")
    exif_at = head.find(b"eXIf")
    return PngHeader(head[24], head[25], exif_at != -1 and (data_at == -1 or exif_at < data_at))


def declared_pixels(head: bytes) -> int | None:
    """Width x height as a JPEG, PNG or WebP header declares it (None when unknown)."""
    media = media_type_of(head)
    if media == JPEG:
        width, height = _jpeg_size(head)
    elif media == PNG and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
    elif media == WEBP:
        width, height = _webp_size(head)
    else:
        return None
    return None if width is None or height is None else width * height
