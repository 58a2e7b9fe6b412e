"""The demo's contact sheet: every input beside its outputs and reports, openable from disk."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import unquote

from PIL import Image

from local.contact_sheet import write_contact_sheet


def image_file(path: Path, fmt: str, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    if fmt == "HEIF":
        from pillow_heif import from_pillow

        from_pillow(Image.new("RGB", (40, 30), (9, 99, 199))).save(buffer, quality=80)
    else:
        Image.new(mode, (40, 30), (200, 30, 40)).save(buffer, fmt)
    path.write_bytes(buffer.getvalue())


def test_each_input_is_shown_beside_its_outputs_and_failures(tmp_path):
    # Given a run's inputs and its mirrored bucket: a plain cutout, a shop image with two outputs
    # (one of them failed), a HEIC, a rejected file, and inputs whose names extend each other
    inputs, out = tmp_path / "in", tmp_path / "out"
    image_file(inputs / "a b.jpg", "JPEG")
    image_file(inputs / "shop" / "shoe é.jpg", "JPEG")
    image_file(inputs / "shop" / "pot.heic", "HEIF")
    (inputs / "notes.txt").write_text("hello")
    image_file(inputs / "x", "PNG")
    image_file(inputs / "x.web", "PNG")
    image_file(out / "cutouts" / "a b.jpg.png", "PNG", "RGBA")
    image_file(out / "cutouts" / "shop" / "shoe é.jpg.png", "PNG", "RGBA")
    image_file(out / "cutouts" / "shop" / "shoe é.jpg.white.jpg", "JPEG")
    image_file(out / "cutouts" / "shop" / "pot.heic.png", "PNG", "RGBA")
    image_file(out / "cutouts" / "x.png", "PNG", "RGBA")
    image_file(out / "cutouts" / "x.web.png", "PNG", "RGBA")
    (out / "failed" / "shop").mkdir(parents=True)
    (out / "failed" / "shop" / "shoe é.jpg.web.json").write_text(
        json.dumps({"reason": "render-failed", "message": "WebP is at most 16383 pixels a side", "output": "web"})
    )
    (out / "failed" / "notes.txt.json").write_text(json.dumps({"reason": "unsupported-type", "message": "<text>"}))
    sheet = out / "index.html"

    # When the contact sheet is written
    shown = write_contact_sheet(inputs, out, sheet)

    # Then it shows every input, each with its own outputs and reports
    page = sheet.read_text(encoding="utf-8")
    assert shown == 6
    rows = {re.search(r"<b>([^<]+)</b>", row).group(1): row for row in page.split('<div class="row">')[1:]}
    assert set(rows) == {"a b.jpg", "shop/shoe é.jpg", "shop/pot.heic", "notes.txt", "x", "x.web"}
    assert "<b>white</b>" in rows["shop/shoe é.jpg"] and "<b>cutout</b>" in rows["shop/shoe é.jpg"]
    assert "render-failed" in rows["shop/shoe é.jpg"] and "output web failed" in rows["shop/shoe é.jpg"]
    assert "unsupported-type" in rows["notes.txt"] and "&lt;text&gt;" in rows["notes.txt"]
    assert "x.web.png" in rows["x.web"] and "x.web.png" not in rows["x"]  # the longest name owns it
    # ...the HEIC as an embedded preview a browser can show
    assert "data:image/jpeg;base64," in rows["shop/pot.heic"]
    # ...outputs on a CSS checkerboard
    assert "repeating-conic-gradient" in page
    # ...with only relative links that resolve to the files, and nothing fetched from a network
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links and str(tmp_path) not in page and "http" not in page
    for link in links:
        if not link.startswith("data:"):
            assert (sheet.parent / unquote(link)).is_file(), link
    assert "../in/a%20b.jpg" in links


def test_an_input_with_nothing_yet_says_so(tmp_path):
    # Given an input with neither an output nor a report (a run that timed out)
    image_file(tmp_path / "in" / "late.png", "PNG")
    # When the sheet is written
    shown = write_contact_sheet(tmp_path / "in", tmp_path / "out", tmp_path / "out" / "index.html")
    # Then the input is listed with "no output"
    assert shown == 1
    assert "no output" in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
