"""Draw the sample images that ship with Cutouts, and their manifest.

    .venv/bin/python samples/make_samples.py [OUTPUT_DIR]

Images go to ``OUTPUT_DIR/images/`` (default: ``samples/images/``) and the manifest to
``OUTPUT_DIR/manifest.json``: the images directory holds nothing but images, so it can be
handed to ``python -m local run --input samples/images`` as it is.

Every image is drawn here with Pillow (no photographs, no third-party content), so the samples
are ours to release under CC0 1.0 (see LICENSE.md). Subjects sit on plain or gently graded
backgrounds, the kind of input the local emulator's background removal is built for. Names
include a space, non-ASCII characters and a nested directory, so the pipeline's key handling is
exercised on every demo run.

``manifest.json`` records, per file, a pixel inside the subject and a pixel in the background
(``[x, y]``), so tests can check a cutout pixel by pixel; ``subject_more`` and
``background_more`` hold further points where a sample has a tricky area (an enclosed
background-coloured panel that must stay opaque, a gap between cactus arms that must not).
Drawing is deterministic, so re-running the script reproduces the committed files.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

IMAGES_DIR = "images"
SCALE = 2  # draw at twice the size, then downsample: smooth, anti-aliased edges

Point = tuple[int, int]


@dataclass
class Sample:
    path: str
    size: Point
    draw: Callable[[Image.Image, ImageDraw.ImageDraw], None]
    background: Callable[[Point], Image.Image]
    subject: Point
    background_point: Point
    description: str
    subject_more: list[Point] = field(default_factory=list)
    background_more: list[Point] = field(default_factory=list)
    save_options: dict[str, Any] = field(default_factory=dict)
    # what the input needs before the gateway sees it (None: nothing): "exif-orientation-6" (stored
    # turned, with the EXIF tag that turns it back; size and points are as a browser shows it),
    # "heic" (an iPhone's format), "already-cut-out" (its own alpha is the master; no gateway call)
    handling: str | None = None


def vertical_gradient(top: tuple[int, int, int], bottom: tuple[int, int, int]):
    def make(size: Point) -> Image.Image:
        ramp = Image.linear_gradient("L").resize(size)
        return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)

    return make


def horizontal_gradient(left: tuple[int, int, int], right: tuple[int, int, int]):
    def make(size: Point) -> Image.Image:
        ramp = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size)
        return Image.composite(Image.new("RGB", size, right), Image.new("RGB", size, left), ramp)

    return make


def plain(colour: tuple[int, int, int]):
    return lambda size: Image.new("RGB", size, colour)


def transparent(size: Point) -> Image.Image:
    return Image.new("RGBA", size, (0, 0, 0, 0))


def s(*values: float) -> list[float]:
    """Scale coordinates from output pixels to drawing pixels."""
    return [v * SCALE for v in values]


def draw_apple(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    # Body: two overlapping circles make the apple's shoulders.
    d.ellipse(s(82, 110, 222, 290), fill=(196, 28, 36))
    d.ellipse(s(162, 110, 302, 290), fill=(196, 28, 36))
    d.ellipse(s(100, 160, 284, 330), fill=(186, 24, 32))
    d.ellipse(s(120, 140, 170, 200), fill=(232, 96, 96))  # highlight
    d.rounded_rectangle(s(186, 70, 198, 130), radius=4 * SCALE, fill=(101, 67, 33))  # stem
    d.polygon(s(198, 96, 236, 62, 282, 66, 246, 104, 204, 108), fill=(46, 139, 34))  # leaf
    d.line(s(204, 104, 266, 70), fill=(30, 100, 24), width=2 * SCALE)


def draw_mug(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    blue = (30, 80, 190)
    # A solid handle (a closed loop would enclose background that the emulator keeps opaque).
    d.rounded_rectangle(s(236, 150, 300, 270), radius=28 * SCALE, fill=(22, 60, 150))
    d.rounded_rectangle(s(96, 110, 256, 320), radius=14 * SCALE, fill=blue)
    d.ellipse(s(96, 96, 256, 126), fill=(18, 44, 110))  # opening
    d.rectangle(s(120, 170, 232, 240), fill=(250, 250, 250))  # label, close to the background
    for x in (152, 200):  # two coffee beans on the label (no fonts: the output stays reproducible)
        d.ellipse(s(x - 14, 186, x + 14, 224), fill=(92, 56, 30))
        d.line(s(x, 190, x, 220), fill=(250, 250, 250), width=2 * SCALE)


def draw_star(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    cx, cy, outer, inner = 192, 196, 150, 62
    points: list[float] = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / 5
        points += s(cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    d.polygon(points, fill=(250, 204, 21), outline=(214, 158, 0), width=3 * SCALE)


def draw_cactus(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    green = (52, 140, 72)
    d.rounded_rectangle(s(168, 70, 232, 330), radius=32 * SCALE, fill=green)  # trunk
    d.rounded_rectangle(s(100, 160, 168, 196), radius=18 * SCALE, fill=green)  # left arm
    d.rounded_rectangle(s(100, 100, 136, 196), radius=18 * SCALE, fill=green)
    d.rounded_rectangle(s(232, 190, 300, 226), radius=18 * SCALE, fill=green)  # right arm
    d.rounded_rectangle(s(264, 120, 300, 226), radius=18 * SCALE, fill=green)
    for x in (184, 200, 216):
        d.line(s(x, 90, x, 320), fill=(40, 112, 58), width=2 * SCALE)
    d.polygon(s(130, 320, 270, 320, 250, 420, 150, 420), fill=(196, 98, 45))  # pot
    d.rectangle(s(120, 306, 280, 330), fill=(176, 84, 36))  # rim


def draw_figure(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    skin, shirt, trousers = (233, 180, 140), (220, 60, 120), (40, 40, 70)
    d.ellipse(s(170, 40, 230, 100), fill=skin)  # head
    d.rounded_rectangle(s(160, 108, 240, 240), radius=16 * SCALE, fill=shirt)  # torso
    d.line(s(168, 120, 110, 60), fill=shirt, width=22 * SCALE)  # waving arm
    d.ellipse(s(96, 42, 124, 70), fill=skin)
    d.line(s(232, 120, 272, 220), fill=shirt, width=22 * SCALE)  # other arm
    d.ellipse(s(260, 212, 286, 238), fill=skin)
    d.rounded_rectangle(s(160, 232, 192, 370), radius=12 * SCALE, fill=trousers)  # legs
    d.rounded_rectangle(s(208, 232, 240, 370), radius=12 * SCALE, fill=trousers)
    d.ellipse(s(144, 358, 194, 382), fill=(20, 20, 20))  # shoes
    d.ellipse(s(206, 358, 256, 382), fill=(20, 20, 20))


def draw_beach_ball(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    box = s(56, 56, 264, 264)
    # Alternating panels; the white ones match the background and are enclosed by the outline.
    colours = [
        (230, 40, 40),
        (250, 250, 250),
        (30, 110, 220),
        (250, 250, 250),
        (250, 200, 0),
        (250, 250, 250),
    ]
    for i, colour in enumerate(colours):
        d.pieslice(box, start=i * 60 - 90, end=(i + 1) * 60 - 90, fill=colour)
    d.ellipse(box, outline=(40, 40, 40), width=5 * SCALE)
    d.ellipse(s(146, 146, 174, 174), fill=(250, 250, 250), outline=(40, 40, 40), width=3 * SCALE)


def draw_sneaker(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    d.rounded_rectangle(
        s(40, 200, 340, 250), radius=20 * SCALE, fill=(245, 245, 245), outline=(90, 90, 90), width=3 * SCALE
    )  # sole
    d.polygon(s(60, 205, 80, 110, 170, 100, 250, 150, 330, 170, 335, 205), fill=(214, 52, 44))  # upper
    d.line(s(110, 130, 200, 125), fill=(250, 250, 250), width=6 * SCALE)  # laces
    d.line(s(120, 150, 215, 145), fill=(250, 250, 250), width=6 * SCALE)
    d.polygon(s(180, 185, 300, 175, 310, 195, 190, 200), fill=(30, 30, 30))  # stripe


def draw_teapot(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    teal = (24, 128, 128)
    d.ellipse(s(90, 120, 290, 300), fill=teal)  # body
    d.polygon(s(270, 200, 350, 130, 360, 140, 290, 240), fill=teal)  # spout
    d.rounded_rectangle(s(40, 160, 110, 260), radius=30 * SCALE, fill=(16, 96, 96))  # handle
    d.ellipse(s(150, 96, 230, 136), fill=(16, 96, 96))  # lid
    d.ellipse(s(178, 76, 202, 100), fill=(230, 190, 60))  # knob


def draw_lamp(image: Image.Image, d: ImageDraw.ImageDraw) -> None:
    d.polygon(s(100, 60, 220, 60, 270, 170, 50, 170), fill=(250, 214, 120))  # shade
    d.rectangle(s(152, 170, 168, 330), fill=(80, 80, 90))  # stem
    d.ellipse(s(90, 320, 230, 360), fill=(60, 60, 70))  # base


SAMPLES = [
    Sample(
        path="red apple.jpg",
        size=(384, 384),
        draw=draw_apple,
        background=vertical_gradient((246, 246, 244), (214, 216, 220)),
        subject=(190, 240),
        background_point=(30, 30),
        subject_more=[(260, 84)],  # the leaf
        background_more=[(350, 350)],
        description="a red apple with a stem and a leaf on a light grey vertical gradient (JPEG)",
        save_options={"quality": 88},
    ),
    Sample(
        path="café mug.png",
        size=(352, 384),
        draw=draw_mug,
        background=plain((250, 250, 250)),
        subject=(120, 290),
        background_point=(20, 360),
        subject_more=[(126, 176), (270, 210)],  # the white label; the handle
        background_more=[(330, 200)],
        description="a blue mug with a white label on a plain white background (PNG)",
        save_options={"optimize": True},
    ),
    Sample(
        path="nested/dir/star.webp",
        size=(384, 384),
        draw=draw_star,
        background=vertical_gradient((120, 170, 230), (190, 220, 250)),
        subject=(192, 200),
        background_point=(40, 360),
        subject_more=[(192, 70)],
        background_more=[(192, 340), (300, 300)],  # between the lower points
        description="a yellow star on a sky-blue vertical gradient (WEBP)",
        save_options={"quality": 90, "method": 6},
    ),
    Sample(
        path="green cactus.png",
        size=(400, 448),
        draw=draw_cactus,
        background=horizontal_gradient((240, 228, 206), (222, 204, 176)),
        subject=(200, 200),
        background_point=(20, 20),
        subject_more=[(118, 130), (200, 400)],  # left arm; the pot
        background_more=[(150, 130), (250, 150)],  # between the arms and the trunk
        description="a green cactus in a terracotta pot on a beige horizontal gradient (PNG)",
        save_options={"optimize": True},
    ),
    Sample(
        path="people/señora – waving.jpg",
        size=(384, 416),
        draw=draw_figure,
        background=plain((236, 240, 226)),
        subject=(200, 170),
        background_point=(360, 30),
        subject_more=[(110, 56), (176, 300)],  # the waving hand; a leg
        background_more=[(200, 300)],  # between the legs
        description="a waving figure on a plain pale background (JPEG)",
        save_options={"quality": 90},
    ),
    Sample(
        path="beach ball.png",
        size=(320, 320),
        draw=draw_beach_ball,
        background=plain((250, 250, 250)),
        subject=(200, 110),
        background_point=(10, 10),
        subject_more=[(204, 200), (160, 160)],  # white panels and cap, enclosed: stay opaque
        background_more=[(300, 300)],
        description="a beach ball whose white panels match the white background (PNG)",
        save_options={"optimize": True},
    ),
    Sample(
        path="shop/sneaker.jpg",
        size=(384, 320),
        draw=draw_sneaker,
        background=plain((244, 244, 240)),
        subject=(200, 160),
        background_point=(20, 20),
        subject_more=[(100, 225)],  # the sole
        background_more=[(360, 60)],
        description="a red sneaker, stored turned with EXIF Orientation 6: it must come out upright (JPEG)",
        save_options={"quality": 88},
        handling="exif-orientation-6",
    ),
    Sample(
        path="shop/teapot.heic",
        size=(384, 352),
        draw=draw_teapot,
        background=plain((236, 236, 244)),
        subject=(190, 220),
        background_point=(20, 20),
        subject_more=[(190, 88)],  # the knob
        background_more=[(360, 330)],
        description="a teal teapot, as an iPhone writes it (HEIC)",
        save_options={"quality": 80},
        handling="heic",
    ),
    Sample(
        path="shop/lamp cutout.png",
        size=(320, 384),
        draw=draw_lamp,
        background=transparent,
        subject=(160, 120),
        background_point=(20, 20),
        subject_more=[(160, 250)],  # the stem
        background_more=[(300, 300)],
        description="a table lamp that is already cut out: its own alpha is the master (PNG)",
        save_options={"optimize": True},
        handling="already-cut-out",
    ),
]


def render(sample: Sample) -> Image.Image:
    big = (sample.size[0] * SCALE, sample.size[1] * SCALE)
    image = sample.background(big)
    sample.draw(image, ImageDraw.Draw(image))
    return image.resize(sample.size, Image.Resampling.LANCZOS)


def save(image: Image.Image, target: Path, sample: Sample) -> None:
    if sample.handling == "exif-orientation-6":
        exif = Image.Exif()
        exif[0x0112] = 6  # a viewer turns the stored pixels 90 degrees clockwise
        image.transpose(Image.Transpose.ROTATE_90).save(target, exif=exif.tobytes(), **sample.save_options)
    elif sample.handling == "heic":
        from pillow_heif import from_pillow  # dev requirement; only this sample needs it

        from_pillow(image).save(target, **sample.save_options)
    else:
        image.save(target, **sample.save_options)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    images: dict[str, dict[str, object]] = {}
    for sample in SAMPLES:
        target = out / IMAGES_DIR / sample.path
        target.parent.mkdir(parents=True, exist_ok=True)
        save(render(sample), target, sample)
        images[sample.path] = {
            "width": sample.size[0],
            "height": sample.size[1],
            "subject": list(sample.subject),
            "background": list(sample.background_point),
            "subject_more": [list(p) for p in sample.subject_more],
            "background_more": [list(p) for p in sample.background_more],
            "description": sample.description,
            **({"handling": sample.handling} if sample.handling else {}),
        }
        print(f"{target}  {target.stat().st_size} bytes")
    manifest = {
        "license": "CC0-1.0",
        "generator": "samples/make_samples.py",
        "images_dir": IMAGES_DIR,
        "points": "[x, y] pixel coordinates; subject must be opaque, background transparent",
        "images": images,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
