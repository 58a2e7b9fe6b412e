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
