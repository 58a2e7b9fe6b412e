"""Render a profile's outputs from the master (the gateway's one paid result).

Memory is the constraint: a 48 MP master is a 192 MB RGBA frame, and the rendering function's
size follows from how many frames live at once. So the master is decoded once; nothing else is
ever made at full size except the mask (one byte a pixel). Work that must touch every pixel (the
subject's bounding box, the first downscale, compositing) runs in horizontal strips, and the
downscale is an exact box reduction by an integer factor in premultiplied alpha, strip by strip,
before one Lanczos resize of the small result (Pillow's ``reducing_gap`` does the same in one
piece, with a full-size premultiplied copy). Compositing over a colour is premultiplied
(``alpha_composite``), so soft edges blend instead of showing a fringe or a jagged edge.

Pillow is imported inside the functions: importing this module (for its ADVICE or RenderError)
must not load Pillow on the submit and webhook paths.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from cutouts.profiles import DEFAULT_QUALITY, SUBJECT_ALPHA_THRESHOLD, ImageFormat, OutputSpec, Position, Profile

if TYPE_CHECKING:
    from PIL import Image

STRIP_ROWS = 64  # rows per strip: at 8000 wide, 2 MB of RGBA; more rows buy no speed, only memory
REDUCING_GAP = 2.0  # box-reduce until the last Lanczos step shrinks at most this much (Pillow's advice)
PNG_COMPRESS_LEVEL = 3  # zlib level: 6 (Pillow's default) costs ~2x the time for a few percent of size

ADVICE: dict[str, str] = {
    "master-too-large": "The kept result is over the pixel cap (max_image_pixels): raise the cap and the "
    "rendering function's memory together, then rerender.",
    "master-undecodable": "The kept result is not a readable image: retry the job to fetch the result again.",
    "render-failed": "This output could not be made from the result (the message says why, e.g. an output too "
    "large for its format): change the output in profiles.json, deploy, then rerender.",
}


class RenderError(Exception):
    """One output could not be made; the others are unaffected."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class _Master:
    """The decoded master and what several outputs share: the subject's box."""

    image: Image.Image
    _box: tuple[int, int, int, int] | None = None

    def subject_box(self) -> tuple[int, int, int, int]:
        """The bounding box of alpha above the threshold; the whole image when nothing is opaque."""
        if self._box is None:
            self._box = _subject_box(self.image) or (0, 0, *self.image.size)
        return self._box


def render_output(master: Image.Image, spec: OutputSpec) -> bytes:
    """Render one output from a full-size RGBA master."""
    decoded = _Master(master)
    layout = _layout(decoded, spec)
    return _encode(_compose(_subject(decoded, spec, layout), spec, layout), spec)


def render_profile(
    master_bytes: bytes, profile: Profile, max_pixels: int
) -> Iterator[tuple[OutputSpec, bytes | RenderError]]:
    """Yield every output of the profile, in order: its bytes, or the RenderError that stopped it alone.

    An output that is the master as it is (today's png cutout) is its bytes: no decode, no encode.
    The master is decoded once, only if some output needs its pixels. What needs the decoded frame
    (each output's subject at its final size) is done first, largest first; a large result is
    finished at once, a smaller one (under 1/4 of the frame) is held, and its canvas and encoder
    (libwebp holds tens of MB) run after the frame is released. So the peak is about the frame plus
    the largest output, not the frame plus every canvas and encoder.
    """
    results: dict[int, bytes | RenderError] = {}
    pending: list[tuple[int, OutputSpec]] = []
    for index, spec in enumerate(profile.outputs):
        if spec.is_master_copy():
            results[index] = master_bytes
        else:
            pending.append((index, spec))
    if pending:
        results.update(_render_all(master_bytes, max_pixels, pending))
    for index, spec in enumerate(profile.outputs):
        yield spec, results.pop(index)


def _render_all(
    master_bytes: bytes, max_pixels: int, pending: list[tuple[int, OutputSpec]]
) -> dict[int, bytes | RenderError]:
    """Decode once, render every pending output; the only reference to the frame lives here."""
    master = _decode(master_bytes, max_pixels)
    if isinstance(master, RenderError):
        return {index: master for index, _ in pending}
    results: dict[int, bytes | RenderError] = {}
    plans: list[tuple[int, OutputSpec, _Layout]] = []
    for index, spec in pending:
        try:
            plans.append((index, spec, _layout(master, spec)))
        except Exception as exc:  # noqa: BLE001 - one output's failure must not stop the others
            results[index] = _failed(spec, exc)
    plans.sort(key=lambda plan: -plan[2].subject[0] * plan[2].subject[1])
    hold_below = master.image.width * master.image.height * 4 // 4
    held: list[tuple[int, OutputSpec, _Layout, Image.Image]] = []
    for index, spec, layout in plans:
        try:
            subject = _subject(master, spec, layout)
            if subject.width * subject.height * len(subject.getbands()) < hold_below:
                held.append((index, spec, layout, subject))
            else:
                results[index] = _encode(_compose(subject, spec, layout), spec)
            del subject
        except Exception as exc:  # noqa: BLE001
            results[index] = _failed(spec, exc)
    del master  # the frame is freed here: nothing else refers to it
    while held:
        index, spec, layout, subject = held.pop()
        try:
            results[index] = _encode(_compose(subject, spec, layout), spec)
        except Exception as exc:  # noqa: BLE001
            results[index] = _failed(spec, exc)
        del subject
    return results


def _failed(spec: OutputSpec, exc: Exception) -> RenderError:
    if isinstance(exc, RenderError):
        return exc.with_traceback(None)  # a traceback would keep the decoded frame alive
    return RenderError("render-failed", f'output "{spec.name}": {type(exc).__name__}: {exc}')


def _decode(data: bytes, max_pixels: int) -> _Master | RenderError:
    from PIL import Image, UnidentifiedImageError

    try:
        opened = Image.open(io.BytesIO(data))
        width, height = opened.size
        if width * height > max_pixels:
            return RenderError(
                "master-too-large", f"the result is {width}x{height} pixels; the cap is {max_pixels} pixels"
            )
        opened.load()
    except Image.DecompressionBombError as exc:
        return RenderError("master-too-large", str(exc))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return RenderError("master-undecodable", f"the result cannot be decoded: {exc}")
    image: Image.Image = opened if opened.mode == "RGBA" else opened.convert("RGBA")
    return _Master(image)


class _Layout(NamedTuple):
    box: tuple[int, int, int, int]  # the part of the master the output shows
    subject: tuple[int, int]  # that box's size in the output
    size: tuple[int, int]  # the output's size
    at: tuple[int, int]  # where the subject goes in the output


def _layout(master: _Master, spec: OutputSpec) -> _Layout:
    """Where everything goes: crop box, scale (canvas fit, maxSize), output size and placement."""
    width, height = master.image.size
    box = master.subject_box() if spec.crop == "subject" else (0, 0, width, height)
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    margin = spec.margin.for_subject(box_w, box_h)
    content_w, content_h = box_w + 2 * margin, box_h + 2 * margin
    if spec.canvas is not None:
        out_w, out_h = spec.canvas
        if spec.max_size is not None and max(out_w, out_h) > spec.max_size:
            shrink = spec.max_size / max(out_w, out_h)
            out_w, out_h = max(1, round(out_w * shrink)), max(1, round(out_h * shrink))
        scale = min(out_w / content_w, out_h / content_h)  # fits; may enlarge a small subject
    else:
        scale = 1.0
        if spec.max_size is not None and max(content_w, content_h) > spec.max_size:
            scale = spec.max_size / max(content_w, content_h)  # never upscales
        out_w, out_h = max(1, round(content_w * scale)), max(1, round(content_h * scale))
    subject_w, subject_h = min(max(1, round(box_w * scale)), out_w), min(max(1, round(box_h * scale)), out_h)
    x = (out_w - subject_w) // 2
    if spec.canvas is not None and spec.position is Position.BOTTOM:
        y = max(0, out_h - round(margin * scale) - subject_h)  # standing on the bottom margin
    else:
        y = (out_h - subject_h) // 2
    return _Layout(box, (subject_w, subject_h), (out_w, out_h), (x, y))


def _subject(master: _Master, spec: OutputSpec, layout: _Layout) -> Image.Image:
    """The box at its output size: RGBA, or for a mask its alpha alone ("L")."""
    return _scaled(master.image, layout.box, layout.subject, alpha_only=spec.mask)


def _compose(subject: Image.Image, spec: OutputSpec, layout: _Layout) -> Image.Image:
    """The output's pixels, ready to encode: the subject on its canvas or background."""
    from PIL import Image

    if spec.mask or spec.background is None:
        if layout.subject == layout.size:
            return subject  # no canvas: the subject is the output
        canvas = Image.new(subject.mode, layout.size, 0)
        canvas.paste(subject, layout.at)  # onto transparency (or a black mask) a plain paste is exact
        return canvas
    mode = "RGBA" if spec.format.has_alpha else "RGB"
    bands = _bands(subject, (0, 0, *subject.size), subject.size)
    return _on_background(bands, layout.size, layout.at, spec.background, mode)


Bands = Iterator[tuple[int, "Image.Image"]]


def _scaled(
    image: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int], alpha_only: bool = False
) -> Image.Image:
    """The box of the image at the given size (only its alpha, as "L", with ``alpha_only``)."""
    from PIL import Image

    if not alpha_only and (box[2] - box[0], box[3] - box[1]) == size and box == (0, 0, *image.size):
        return image
    result = Image.new("L" if alpha_only else image.mode, size)
    for top, piece in _bands(image, box, size):
        result.paste(piece.getchannel("A") if alpha_only else piece, (0, top))
    return result


def _bands(image: Image.Image, box: tuple[int, int, int, int], size: tuple[int, int]) -> Bands:
    """The box of the image at the given size, as bands of rows (top, piece), never a full-size copy.

    A shrink of 2 * REDUCING_GAP or more starts with an exact integer box reduction, strip by strip
    (strip heights are a multiple of the factor, so strips never share a source pixel), in
    premultiplied alpha; then a Lanczos resize, itself in bands, of what is left.
    """
    from PIL import Image

    box_w, box_h = box[2] - box[0], box[3] - box[1]
    if (box_w, box_h) == size:
        for top in range(box[1], box[3], STRIP_ROWS):
            yield top - box[1], image.crop((box[0], top, box[2], min(top + STRIP_ROWS, box[3])))
        return
    factor = math.floor(min(box_w / size[0], box_h / size[1]) / REDUCING_GAP)
    if factor < 2:
        yield from _lanczos_bands(image, (float(box[0]), float(box[1]), float(box[2]), float(box[3])), size)
        return
    premultiplied = image.mode == "RGBA"
    reduced = Image.new("RGBa" if premultiplied else image.mode, (math.ceil(box_w / factor), math.ceil(box_h / factor)))
    rows = max(1, STRIP_ROWS // factor) * factor
    for top in range(box[1], box[3], rows):
        strip = image.crop((box[0], top, box[2], min(top + rows, box[3])))
        if premultiplied:
            strip = strip.convert("RGBa")
        reduced.paste(strip.reduce(factor), (0, (top - box[1]) // factor))
        del strip
    # the last row or column of the reduction may stand for a partial block: map the box exactly
    yield from _lanczos_bands(reduced, (0.0, 0.0, box_w / factor, box_h / factor), size)


def _lanczos_bands(image: Image.Image, box: tuple[float, float, float, float], size: tuple[int, int]) -> Bands:
    """``image.resize(size, LANCZOS, box=box)`` a band of output rows at a time, in premultiplied alpha.

    Each band is resampled from the source rows under it plus the filter's reach, so the bands
    equal one whole resize (Pillow's filter reads pixels outside ``box``). RGBA is premultiplied
    band by band; RGBa (a reduction) comes out as RGBA; other modes pass through.
    """
    from PIL import Image

    out_w, out_h = size
    scale_x, scale_y = (box[2] - box[0]) / out_w, (box[3] - box[1]) / out_h
    reach_x, reach_y = 3 * max(scale_x, 1.0) + 2, 3 * max(scale_y, 1.0) + 2  # Lanczos has support 3
    left = max(0, math.floor(box[0] - reach_x))
    right = min(image.width, math.ceil(box[2] + reach_x))
    band_rows = max(1, math.floor(STRIP_ROWS / max(scale_y, 1.0)))
    for out_top in range(0, out_h, band_rows):
        out_bottom = min(out_top + band_rows, out_h)
        src_top, src_bottom = box[1] + out_top * scale_y, box[1] + out_bottom * scale_y
        top = max(0, math.floor(src_top - reach_y))
        bottom = min(image.height, math.ceil(src_bottom + reach_y))
        band = image.crop((left, top, right, bottom))
        if band.mode == "RGBA":
            band = band.convert("RGBa")
        piece = band.resize(
            (out_w, out_bottom - out_top),
            Image.Resampling.LANCZOS,
            box=(box[0] - left, src_top - top, box[2] - left, src_bottom - top),
        )
        yield out_top, piece.convert("RGBA") if piece.mode == "RGBa" else piece


def _on_background(
    bands: Bands, size: tuple[int, int], at: tuple[int, int], colour: tuple[int, int, int], mode: str
) -> Image.Image:
    """The subject's bands composited (premultiplied) over an opaque colour, one band at a time."""
    from PIL import Image

    canvas = Image.new(mode, size, colour if mode == "RGB" else (*colour, 255))
    x, y = at
    for top, piece in bands:
        backdrop = Image.new("RGBA", piece.size, (*colour, 255))
        backdrop.alpha_composite(piece)
        canvas.paste(backdrop if mode == "RGBA" else backdrop.convert(mode), (x, y + top))
    return canvas


def _subject_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box of alpha > SUBJECT_ALPHA_THRESHOLD, strip by strip (no full-size copy)."""
    lut = [0] * (SUBJECT_ALPHA_THRESHOLD + 1) + [255] * (255 - SUBJECT_ALPHA_THRESHOLD)
    left, top, right, bottom = image.width, -1, -1, -1
    for y in range(0, image.height, STRIP_ROWS):
        strip_box = (0, y, image.width, min(y + STRIP_ROWS, image.height))
        strip = image.crop(strip_box).getchannel("A")
        found = strip.point(lut).getbbox()
        if found is None:
            continue
        left, right = min(left, found[0]), max(right, found[2])
        if top < 0:
            top = y + found[1]
        bottom = y + found[3]
    return None if top < 0 else (left, top, right, bottom)


def _encode(image: Image.Image, spec: OutputSpec) -> bytes:
    buffer = io.BytesIO()
    quality = spec.quality or DEFAULT_QUALITY
    if spec.format is ImageFormat.PNG:
        image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif spec.format is ImageFormat.JPEG:
        image.save(buffer, "JPEG", quality=quality, optimize=False, progressive=False)
    elif spec.format is ImageFormat.WEBP:
        if max(image.size) > 16383:
            raise RenderError("render-failed", f'output "{spec.name}": WebP is at most 16383 pixels a side')
        image.save(buffer, "WEBP", quality=quality, method=4, exact=False)
    else:
        image.save(buffer, "AVIF", quality=quality, speed=8)
    return buffer.getvalue()
