import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from cutouts import rendering
from cutouts.profiles import Profiles
from cutouts.rendering import RenderError, render_output, render_profile

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
MAX_PIXELS = 50_000_000


def spec(**fields):
    """One OutputSpec, validated the way a profiles file is."""
    return Profiles.parse({"profiles": {"p": {"outputs": [{"name": "o", **fields}]}}}).profiles["p"].outputs[0]


def profile(*outputs):
    return Profiles.parse({"profiles": {"p": {"outputs": list(outputs)}}}).profiles["p"]


def subject_master(size=(100, 80), rect=(20, 10, 60, 50), colour=(200, 30, 40)) -> Image.Image:
    """A transparent master (with garbage green under the transparency) holding one opaque rectangle."""
    master = Image.new("RGBA", size, (0, 255, 0, 0))
    ImageDraw.Draw(master).rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=(*colour, 255))
    return master


def photo_master(size=(900, 700)) -> Image.Image:
    """Noisy colours with a soft-edged elliptic alpha, like a real cutout."""
    image = Image.effect_noise((size[0] // 3, size[1]), 60).convert("RGB").resize(size)
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).ellipse((size[0] // 9, size[1] // 14, size[0] * 8 // 9, size[1] * 13 // 14), fill=255)
    image.putalpha(alpha.resize((size[0] // 10, size[1] // 10)).resize(size, Image.Resampling.BILINEAR))
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def opaque_box(image: Image.Image):
    return image.getchannel("A").point(lambda a: 255 if a > 128 else 0).getbbox()


def test_soft_edges_blend_with_the_background_colour():
    # Given a master whose pixels are half-transparent red, and fully transparent with garbage green
    master = Image.new("RGBA", (4, 2), (0, 255, 0, 0))
    for x in range(4):
        master.putpixel((x, 0), (255, 0, 0, 128))
    # When it is rendered over white as PNG (lossless, to read exact values)
    out = decode(render_output(master, spec(format="png", background="#FFFFFF")))
    # Then the half-transparent red is pink (not red, as a binary-mask paste gives) and the garbage never shows
    r, g, b, a = out.getpixel((1, 0))
    assert (r, a) == (255, 255) and abs(g - 127) <= 1 and abs(b - 127) <= 1
    assert out.getpixel((1, 1)) == (255, 255, 255, 255)


def test_a_downscaled_soft_edge_carries_no_colour_from_under_the_transparency():
    # Given a red square on transparency whose invisible pixels are bright green, large enough to be box-reduced
    master = subject_master((400, 400), (100, 100, 300, 300), (255, 0, 0))
    # When it is downscaled 8x over white
    out = decode(render_output(master, spec(format="png", background="#FFFFFF", maxSize=50)))
    # Then no pixel is greener than the white it blends with: straight-alpha averaging would pull green in
    assert out.size == (50, 50)
    assert all(g <= b + 1 for (_, g, b, _) in out.get_flattened_data())


def test_the_mask_is_the_alpha_as_a_single_channel_png():
    # Given a photo-like master
    master = photo_master((300, 200))
    # When the mask is rendered
    out = decode(render_output(master, spec(mask=True)))
    # Then it is an "L" PNG of the master's size whose values are the alpha
    assert (out.format, out.mode, out.size) == ("PNG", "L", (300, 200))
    assert ImageChops.difference(out, master.getchannel("A")).getbbox() is None


@pytest.mark.parametrize(("margin", "pixels"), [(0, 0), (10, 10), ("25%", 10)])
def test_crop_subject_keeps_the_subject_plus_its_margin(margin, pixels):
    # Given a 40x40 subject at (20, 10) in a 100x80 master
    master = subject_master()
    # When it is cropped to the subject with a margin (25% of the larger side 40 is 10 px)
    out = decode(render_output(master, spec(crop="subject", margin=margin)))
    # Then the output is the subject plus the margin on each side, the subject in the middle
    assert out.size == (40 + 2 * pixels, 40 + 2 * pixels)
    assert opaque_box(out) == (pixels, pixels, pixels + 40, pixels + 40)


def test_crop_ignores_faint_alpha_below_the_threshold():
    # Given a subject plus a faint haze (alpha 3) in a corner, as models leave
    master = subject_master()
    master.putpixel((95, 75), (9, 9, 9, 3))
    # When it is cropped to the subject
    out = decode(render_output(master, spec(crop="subject")))
    # Then the haze does not widen the box
    assert out.size == (40, 40)


def test_crop_of_an_empty_master_keeps_the_whole_image():
    # Given a master with no subject at all
    master = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    # When it is cropped to the subject
    # Then the output is the whole image rather than an error or an empty image
    assert decode(render_output(master, spec(crop="subject"))).size == (30, 20)


@pytest.mark.parametrize(
    ("position", "canvas", "expected_box"),
    [
        # subject 40x40, margin 10 -> content 60; canvas 200x100 -> scale 100/60: subject 67 px, centred
        ("center", [200, 100], (66, 16, 133, 83)),
        # canvas 120x300 -> scale 2: subject 80 px; bottom: standing 20 px (the scaled margin) above the edge
        ("bottom", [120, 300], (20, 200, 100, 280)),
    ],
)
def test_canvas_scales_subject_and_margin_to_fit_and_places_it(position, canvas, expected_box):
    # Given the 40x40 subject
    master = subject_master()
    # When it is placed on a canvas with a 10 px margin
    out = decode(render_output(master, spec(crop="subject", margin=10, canvas=canvas, position=position)))
    # Then the canvas has its size and the subject sits where the position says, with transparency around
    assert out.size == tuple(canvas)
    box = opaque_box(out)
    assert all(abs(got - want) <= 1 for got, want in zip(box, expected_box, strict=True))
    assert out.getpixel((0, 0))[3] == 0


def test_a_jpeg_canvas_is_the_background_colour_around_the_subject():
    # Given the subject on a white jpeg canvas
    master = subject_master()
    out = decode(render_output(master, spec(format="jpeg", crop="subject", margin="8%", canvas=[300, 300])))
    # Then it is an RGB JPEG, white in the corners and the subject's colour in the middle
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (300, 300))
    assert all(v >= 250 for v in out.getpixel((2, 2)))
    r, g, b = out.getpixel((150, 150))
    assert abs(r - 200) < 12 and abs(g - 30) < 12 and abs(b - 40) < 12


@pytest.mark.parametrize(("max_size", "expected"), [(1000, (100, 80)), (100, (100, 80)), (50, (50, 40))])
def test_max_size_caps_the_long_edge_and_never_upscales(max_size, expected):
    # Given a 100x80 master
    master = subject_master()
    # When maxSize is applied
    out = decode(render_output(master, spec(format="webp", maxSize=max_size)))
    # Then the long edge is at most maxSize and never larger than the master's
    assert out.size == expected


def test_max_size_also_caps_a_canvas():
    # Given a 2000x1000 canvas capped at 500
    out = decode(render_output(subject_master(), spec(canvas=[2000, 1000], maxSize=500)))
    # Then the canvas keeps its proportions at the cap
    assert out.size == (500, 250)


@pytest.mark.parametrize(
    ("fmt", "pil_format", "mode", "content_type"),
    [
        ("png", "PNG", "RGBA", "image/png"),
        ("jpeg", "JPEG", "RGB", "image/jpeg"),
        ("webp", "WEBP", "RGBA", "image/webp"),
        ("avif", "AVIF", "RGBA", "image/avif"),
    ],
)
def test_every_format_decodes_back_with_its_content_type(fmt, pil_format, mode, content_type):
    # Given an output of each format
    output = spec(format=fmt, **({"quality": 80} if fmt != "png" else {}))
    # When it is rendered
    out = decode(render_output(photo_master((120, 90)), output))
    # Then the bytes are that format, and the content type says so
    assert (out.format, out.mode, out.size) == (pil_format, mode, (120, 90))
    assert output.content_type() == content_type


def test_quality_changes_the_lossy_size():
    master = photo_master((200, 150))
    low = render_output(master, spec(format="jpeg", quality=20))
    high = render_output(master, spec(format="jpeg", quality=95))
    assert len(low) < len(high)


@pytest.mark.parametrize("size", [(450, 350), (300, 233), (100, 77), (700, 544), (37, 29)])
def test_striped_downscale_matches_one_whole_resize(monkeypatch, size):
    # Given a soft-edged photo-like master and strips much smaller than it
    monkeypatch.setattr(rendering, "STRIP_ROWS", 37)
    master = photo_master()
    # When it is downscaled in strips
    got = rendering._scaled(master, (10, 20, 890, 690), size).convert("RGBa")
    # Then it equals Pillow's one-piece resize of the same box (compared premultiplied: colour under
    # near-zero alpha is invisible), within the rounding of a reduction Pillow splits per axis
    want = master.resize(size, Image.Resampling.LANCZOS, box=(10, 20, 890, 690), reducing_gap=2.0).convert("RGBa")
    difference = ImageChops.difference(got, want)
    assert max(high for _, high in difference.getextrema()) <= 8
    assert max(ImageStat.Stat(difference).mean) < 1.0


def test_the_master_copy_is_yielded_as_is_and_other_outputs_are_rendered():
    # Given the shop profile's four outputs and a master
    master_bytes = png(photo_master((400, 300)))
    shop = Profiles.parse(
        {
            "profiles": {
                "shop": {
                    "outputs": [
                        {"name": "cutout", "format": "png"},
                        {
                            "name": "white",
                            "format": "jpeg",
                            "crop": "subject",
                            "margin": "8%",
                            "canvas": [200, 200],
                            "quality": 90,
                        },
                        {"name": "web", "format": "webp", "maxSize": 128},
                        {"name": "mask", "format": "png", "mask": True},
                    ]
                }
            }
        }
    ).profiles["shop"]
    # When the profile is rendered
    results = list(render_profile(master_bytes, shop, MAX_PIXELS))
    # Then each output comes once, in order, the cutout is the master's own bytes
    assert [s.name for s, _ in results] == ["cutout", "white", "web", "mask"]
    assert results[0][1] is master_bytes
    sizes = [decode(data).size for _, data in results[1:]]
    assert sizes == [(200, 200), (128, 96), (400, 300)]


def test_one_failing_output_does_not_stop_the_others():
    # Given a master wider than WebP can encode, and a profile whose webp output keeps its full size
    master_bytes = png(Image.new("RGBA", (16500, 2), (1, 2, 3, 255)))
    outputs = profile({"name": "wide", "format": "webp"}, {"name": "small", "format": "png", "maxSize": 100})
    # When it is rendered
    results = dict((s.name, r) for s, r in render_profile(master_bytes, outputs, MAX_PIXELS))
    # Then the webp yields its RenderError and the png is still made
    assert isinstance(results["wide"], RenderError) and results["wide"].reason == "render-failed"
    assert "wide" in results["wide"].message
    assert decode(results["small"]).size == (100, 1)


def test_an_undecodable_master_fails_its_rendered_outputs_but_not_the_copy():
    # Given bytes that are not an image
    results = list(render_profile(b"not a png", profile({"name": "cutout"}, {"name": "mask", "mask": True}), 10))
    # Then the copy is yielded and the rendered output fails with a reason
    assert results[0][1] == b"not a png"
    assert isinstance(results[1][1], RenderError) and results[1][1].reason == "master-undecodable"


def test_a_master_over_the_pixel_cap_is_not_decoded():
    # Given a 100x80 master and a cap of 1,000 pixels
    results = list(render_profile(png(subject_master()), profile({"name": "web", "format": "webp"}), 1000))
    # Then the output fails as too large
    error = results[0][1]
    assert isinstance(error, RenderError) and error.reason == "master-too-large"


def test_every_reason_has_advice():
    # The reasons rendering produces are advised in rendering.ADVICE (merged into reports.ADVICE)
    assert set(rendering.ADVICE) == {"master-too-large", "master-undecodable", "render-failed"}


def test_importing_rendering_does_not_import_pillow():
    import subprocess
    import sys

    code = "import sys; import cutouts.rendering; print('PIL' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(FUNCTIONS_DIR)}
    )
    assert out.stdout.strip() == "False"
