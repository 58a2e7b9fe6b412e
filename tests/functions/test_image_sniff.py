import struct

import pytest
from functions_kit import image_bytes

from cutouts.image_sniff import JPEG, PNG, WEBP, RejectedImage, sniff_image

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 1_000_000


def sniff(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS):
    return sniff_image(data[:65536], data[-1024:], len(data), max_bytes, max_pixels)


def reason_for(data: bytes, **limits) -> str:
    with pytest.raises(RejectedImage) as info:
        sniff(data, **limits)
    return info.value.reason


@pytest.mark.parametrize(("fmt", "media_type"), [("JPEG", JPEG), ("PNG", PNG), ("WEBP", WEBP)])
def test_supported_images_are_accepted_with_their_dimensions(fmt, media_type):
    # Given a real image made by Pillow
    data = image_bytes(fmt, (123, 45))
    # When it is sniffed
    info = sniff(data)
    # Then its type and size are read from its bytes
    assert (info.media_type, info.width, info.height) == (media_type, 123, 45)


def test_lossless_webp_dimensions_are_read():
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGBA", (77, 31)).save(buf, "WEBP", lossless=True)
    info = sniff(buf.getvalue())
    assert (info.width, info.height) == (77, 31)


def test_empty_file_is_rejected():
    assert reason_for(b"") == "empty-file"


def test_text_named_jpg_is_rejected_as_unsupported():
    with pytest.raises(RejectedImage) as info:
        sniff(b"hello, this is not an image\n" * 20)
    assert info.value.reason == "unsupported-type" and "text" in info.value.message


def test_pdf_is_rejected_and_named():
    with pytest.raises(RejectedImage) as info:
        sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n")
    assert info.value.reason == "unsupported-type" and "PDF" in info.value.message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_image_is_rejected(fmt):
    data = image_bytes(fmt, (64, 64))
    assert reason_for(data[: len(data) * 2 // 3]) == "truncated-image"


def test_png_cut_inside_its_header_is_truncated():
    assert reason_for(image_bytes("PNG")[:20]) == "truncated-image"


def test_file_over_the_byte_cap_is_rejected():
    data = image_bytes("PNG", (64, 64))
    assert reason_for(data, max_bytes=len(data) - 1) == "too-large"
    assert sniff(data, max_bytes=len(data)).media_type == PNG


def test_image_over_the_pixel_cap_is_rejected():
    data = image_bytes("JPEG", (100, 50))
    assert reason_for(data, max_pixels=4999) == "too-large"
    assert sniff(data, max_pixels=5000).width == 100


def test_png_declaring_huge_dimensions_is_rejected_without_decoding():
    data = bytearray(image_bytes("PNG", (8, 8)))
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    assert reason_for(bytes(data)) == "too-large"


def test_gif_is_unsupported():
    assert reason_for(image_bytes("GIF")) == "unsupported-type"
