import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from cutouts import image_sniff, normalising
from cutouts.normalising import NormaliseError, already_cut_out, master_from_cut_out, needs_normalising, normalise

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
MAX_PIXELS = 1_000_000


def reference(size=(64, 48)) -> Image.Image:
    """An upright picture no rotation or flip maps onto itself: four coloured quadrants."""
    image = Image.new("RGB", size, (220, 30, 30))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((w // 2, 0, w - 1, h // 2 - 1), fill=(30, 200, 40))
    draw.rectangle((0, h // 2, w // 2 - 1, h - 1), fill=(30, 40, 210))
    draw.rectangle((w // 2, h // 2, w - 1, h - 1), fill=(240, 240, 40))
    return image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def close(a: Image.Image, b: Image.Image, tolerance: float = 6.0) -> bool:
    """Same size and, on average per channel, within a lossy codec's error."""
    if a.size != b.size:
        return False
    return max(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) <= tolerance


def heic(image: Image.Image) -> bytes:
    from pillow_heif import from_pillow

    buffer = io.BytesIO()
    from_pillow(image).save(buffer, quality=95)
    return buffer.getvalue()


def png16_rgb(width: int, height: int, rgb16: tuple[int, int, int]) -> bytes:
    """A 16-bit-a-sample RGB PNG, written by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + struct.pack(">HHH", *rgb16) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


# Pillow's exif_transpose applies these for orientations 2-8; the file stores the inverse.
STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # the file is turned 90 degrees one way; the viewer turns it back
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(reference().transpose(STORED[orientation]), "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_exif_orientation_becomes_the_same_upright_pixels(orientation):
    # Given a JPEG stored sideways or mirrored with the EXIF orientation that makes a browser show it upright
    data = oriented_jpeg(orientation)
    assert needs_normalising(data[:65536])
    # When it is normalised
    result = normalise(data, MAX_PIXELS)
    # Then its pixels are the upright picture, as an opaque JPEG with no orientation left to apply
    out = decode(result.data)
    assert (result.content_type, result.width, result.height) == ("image/jpeg", 64, 48)
    assert close(out, reference())
    assert out.getexif().get(0x0112, 1) == 1
    assert not needs_normalising(result.data[:65536])


def samples():
    opaque = reference()
    gif = [reference(), Image.new("RGB", (64, 48), (0, 0, 0))]
    gif_buffer = io.BytesIO()
    gif[0].save(gif_buffer, "GIF", save_all=True, append_images=gif[1:], duration=100)
    return {
        "jpeg": encode(opaque, "JPEG", quality=95),
        "png": encode(opaque, "PNG"),
        "webp": encode(opaque, "WEBP", lossless=True),
        "heic": heic(opaque),
        "avif": encode(opaque, "AVIF", quality=95),
        "tiff": encode(opaque, "TIFF"),
        "bmp": encode(opaque, "BMP"),
        "gif-first-frame": gif_buffer.getvalue(),
    }


@pytest.mark.parametrize("name", list(samples()))
def test_every_accepted_format_becomes_an_upright_jpeg_of_the_same_picture(name):
    # Given the reference picture in each accepted format (an animated GIF: as its first frame)
    data = samples()[name]
    # When it is normalised
    result = normalise(data, MAX_PIXELS)
    # Then the result is a JPEG the gateway takes, showing the same picture; an upright 8-bit PNG
    # or JPEG (here only to have its alpha checked) is passed on as it is, not decoded and re-encoded
    assert not result.downscaled
    if name in ("png", "jpeg"):
        assert result.data is data and (result.width, result.height) == (64, 48)
        assert result.content_type == f"image/{name}"
    else:
        assert result.content_type == "image/jpeg"
    assert close(decode(result.data), reference(), tolerance=8.0)


@pytest.mark.parametrize(
    ("name", "needed"),
    [("jpeg", False), ("png", False), ("webp", True), ("heic", True), ("avif", True), ("tiff", True), ("bmp", True)],
)
def test_only_other_formats_need_normalising(name, needed):
    assert needs_normalising(samples()[name][:65536]) is needed


def test_media_types_are_told_from_the_first_bytes():
    types = {name: image_sniff.media_type_of(data[:64]) for name, data in samples().items()}
    assert types == {
        "jpeg": "image/jpeg",
        "png": "image/png",
        "webp": "image/webp",
        "heic": "image/heif",
        "avif": "image/avif",
        "tiff": "image/tiff",
        "bmp": "image/bmp",
        "gif-first-frame": "image/gif",
    }
    assert image_sniff.media_type_of(b"%PDF-1.7 hello") is None


def test_a_cmyk_jpeg_becomes_rgb_with_the_right_colour():
    # Given a CMYK JPEG of pure red (no cyan, full magenta and yellow)
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    assert needs_normalising(data[:65536])
    # When it is normalised
    out = decode(normalise(data, MAX_PIXELS).data)
    # Then it is an RGB JPEG of red
    assert out.mode == "RGB"
    r, g, b = out.getpixel((16, 16))
    assert r > 240 and g < 15 and b < 15


def test_a_16_bit_gray_png_is_scaled_not_clipped():
    # Given a 16-bit gray PNG at half intensity (32768)
    data = encode(Image.new("I;16", (16, 16), 32768), "PNG")
    assert needs_normalising(data[:65536])
    # When it is normalised
    out = decode(normalise(data, MAX_PIXELS).data)
    # Then it is 8-bit gray at half intensity, not clipped to white
    assert out.mode == "L" and abs(out.getpixel((8, 8)) - 128) <= 2


def test_a_16_bit_rgb_png_becomes_8_bit():
    # Given a 16-bit RGB PNG
    data = png16_rgb(16, 16, (65535, 32768, 0))
    assert image_sniff.png_header(data).bit_depth == 16 and needs_normalising(data)
    # When it is normalised
    out = decode(normalise(data, MAX_PIXELS).data)
    # Then it is 8-bit RGB with the same colour
    r, g, b = out.getpixel((8, 8))[:3]
    assert out.mode == "RGB" and r > 250 and abs(g - 128) <= 3 and b < 5


def test_an_image_with_alpha_stays_a_png_with_its_alpha():
    # Given a WebP with a transparent half
    image = reference().convert("RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 32, 48))
    result = normalise(encode(image, "WEBP", lossless=True), MAX_PIXELS)
    # Then the normalised copy is a PNG that keeps the alpha
    out = decode(result.data)
    assert (result.content_type, out.mode) == ("image/png", "RGBA")
    assert out.getpixel((5, 5))[3] == 0 and out.getpixel((60, 5))[3] == 255


def test_an_image_over_the_pixel_cap_is_downscaled_to_fit():
    # Given a 1000x800 JPEG and a cap of 100,000 pixels
    data = encode(reference((1000, 800)), "JPEG", quality=90)
    assert needs_normalising(data[:65536], max_pixels=100_000)
    assert not needs_normalising(data[:65536], max_pixels=800_000)
    # When it is normalised
    result = normalise(data, 100_000)
    # Then it keeps its proportions, fits the cap and says it was downscaled
    assert result.downscaled and result.width * result.height <= 100_000
    assert (result.width, result.height) == (353, 282)
    assert close(decode(result.data), reference((353, 282)), tolerance=10.0)


def test_an_image_over_the_pixel_cap_fails_when_oversize_is_fail():
    data = encode(reference((1000, 800)), "PNG")
    with pytest.raises(NormaliseError) as info:
        normalise(data, 100_000, oversize="fail")
    assert info.value.reason == "too-many-pixels"
    assert "1000x800" in info.value.message


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.7 not an image" * 10, "unsupported-format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "undecodable"),
        (encode(reference(), "JPEG")[:300], "undecodable"),
    ],
)
def test_what_cannot_be_normalised_says_why(data, reason):
    with pytest.raises(NormaliseError) as info:
        normalise(data, MAX_PIXELS)
    assert info.value.reason == reason
    assert reason in normalising.ADVICE


def jpeg_with(precision=8, components=3, orientation=None) -> bytes:
    """A JPEG head: SOI, an optional EXIF APP1 with an orientation, and a start-of-frame."""
    head = b"\xff\xd8"
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        body = exif.tobytes()
        body = body if body.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + body
        head += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    frame = struct.pack(">BHHB", precision, 100, 200, components) + b"\x01\x11\x00" * components
    return head + b"\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame + b"\xff\xda"


def png_with(bit_depth=8, colour_type=2, exif=False) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 100, 200, bit_depth, colour_type, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00" * 4
    if exif:
        head += struct.pack(">I", 0) + b"eXIf" + b"\x00" * 4
    return head + struct.pack(">I", 0) + b"IDAT"


@pytest.mark.parametrize(
    ("head", "needed"),
    [
        (jpeg_with(), False),
        (jpeg_with(components=1), False),
        (jpeg_with(orientation=1), False),
        (jpeg_with(orientation=6), True),
        (jpeg_with(orientation=3), True),
        (jpeg_with(components=4), True),  # CMYK
        (jpeg_with(precision=12), True),
        (png_with(), False),
        (png_with(colour_type=0), False),
        (png_with(colour_type=6), True),  # alpha: might already be cut out
        (png_with(colour_type=4), True),
        (png_with(colour_type=3), True),  # palette: may hide a transparent colour
        (png_with(bit_depth=16), True),
        (png_with(exif=True), True),  # an eXIf chunk may carry an orientation
        (b"GIF89a" + b"\x00" * 20, True),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
        (b"garbage", True),
    ],
)
def test_needs_normalising_truth_table(head, needed):
    assert needs_normalising(head) is needed


def test_needs_normalising_does_not_import_pillow():
    import subprocess
    import sys

    code = (
        "import sys; from cutouts.normalising import needs_normalising; "
        "needs_normalising(b'\\xff\\xd8\\xff\\xe0'); print('PIL' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(FUNCTIONS_DIR)}
    )
    assert out.stdout.strip() == "False"


def cutout(size=(100, 80), subject=(20, 10, 80, 80)) -> Image.Image:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse(subject, fill=(200, 50, 60, 255))
    return image


def rounded(image: Image.Image) -> Image.Image:
    alpha = Image.new("L", image.size, 0)
    ImageDraw.Draw(alpha).rounded_rectangle((0, 0, image.width - 1, image.height - 1), radius=12, fill=255)
    image = image.convert("RGBA")
    image.putalpha(alpha)
    return image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (cutout(), True),  # transparent all round, the subject touches the bottom edge a little
        (cutout(subject=(-10, 10, 110, 80)), False),  # the subject spans the width: not a cutout of it
        (reference().convert("RGBA"), False),  # a photo saved with an alpha channel: opaque border
        (rounded(reference()), False),  # a photo with transparent rounded corners
        (Image.new("RGBA", (50, 50), (0, 0, 0, 0)), False),  # nothing in it
        (reference(), False),  # no alpha at all
    ],
)
def test_already_cut_out_means_a_transparent_border_around_a_subject(image, expected):
    assert already_cut_out(encode(image, "PNG")) is expected


def test_an_already_cut_out_webp_gives_an_rgba_png_master_with_its_own_alpha():
    # Given a cut-out WebP
    image = cutout()
    data = encode(image, "WEBP", lossless=True)
    assert already_cut_out(data)
    # When its master is made
    master = decode(master_from_cut_out(data, MAX_PIXELS))
    # Then it is an RGBA PNG whose alpha is the input's
    assert (master.format, master.mode, master.size) == ("PNG", "RGBA", (100, 80))
    assert ImageChops.difference(master.getchannel("A"), image.getchannel("A")).getbbox() is None


def test_a_cut_out_master_over_the_cap_is_downscaled():
    master = decode(master_from_cut_out(encode(cutout((400, 320), (80, 40, 320, 320)), "PNG"), 20_000))
    assert master.width * master.height <= 20_000 and master.mode == "RGBA"


def test_a_turned_cut_out_still_counts_and_its_master_is_upright():
    # Given a cutout whose subject stands on the bottom edge, stored turned with EXIF orientation 6
    image = cutout()
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(image.transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif.tobytes())
    # Then it is still cut out (three transparent sides, whichever they are) and its master is upright
    assert already_cut_out(data)
    master = decode(master_from_cut_out(data, MAX_PIXELS))
    assert ImageChops.difference(master.getchannel("A"), image.getchannel("A")).getbbox() is None


def test_an_upright_rgba_png_is_passed_on_as_it_is():
    # Given an 8-bit RGBA PNG photo (opaque alpha: not cut out) and an 8-bit RGBA PNG cutout
    photo = encode(reference().convert("RGBA"), "PNG")
    cut = encode(cutout(), "PNG")
    assert needs_normalising(photo[:65536])  # its alpha must be looked at
    # When the photo is normalised and the cutout made a master
    # Then both are their own bytes: no decode, no re-encode, no second frame
    assert normalise(photo, MAX_PIXELS).data is photo
    assert master_from_cut_out(cut, MAX_PIXELS) is cut
    # ...unless they are over the cap
    assert normalise(photo, 1000).data is not photo
    assert master_from_cut_out(cut, 1000) is not cut
