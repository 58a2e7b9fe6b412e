"""A contact sheet of a local run: each input beside each of its outputs, as one HTML file.

``write_contact_sheet(input_dir, output_dir, out_file)`` reads the input folder and the mirrored
bucket (``<output_dir>/<output prefix>`` and ``<output_dir>/<failure prefix>``) and writes
``out_file``: no scripts, no network, links relative to ``out_file`` so the folder can be opened
from disk or moved together with its inputs. Outputs sit on a checkerboard (CSS only), so what
is transparent shows as transparent. A failed input or output shows its report's reason and
message. Inputs a browser cannot show (HEIC, TIFF) are embedded as a small JPEG preview.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

OUTPUT_PREFIX = "cutouts/"  # the stack's defaults (functions/cutouts/settings_table.py)
FAILURE_PREFIX = "failed/"
_OUTPUT_NAME = re.compile(r"^\.(?:(?P<name>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)\.)?(?P<ext>png|jpg|webp|avif)$")
_REPORT_NAME = re.compile(r"^(?:\.(?P<name>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?))?\.json$")
_BROWSER_CANNOT_SHOW = {".heic", ".heif", ".tif", ".tiff"}
PREVIEW_SIZE = 360


@dataclass
class _Output:
    name: str
    path: Path


@dataclass
class _Failure:
    output: str | None  # None: the input itself failed
    reason: str
    message: str


@dataclass
class _Entry:
    relative: str
    path: Path
    outputs: list[_Output] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)


def write_contact_sheet(
    input_dir: Path,
    output_dir: Path,
    out_file: Path,
    output_prefix: str = OUTPUT_PREFIX,
    failure_prefix: str = FAILURE_PREFIX,
) -> int:
    """Write the sheet and return how many inputs it shows."""
    entries = {
        path.relative_to(input_dir).as_posix(): _Entry(path.relative_to(input_dir).as_posix(), path)
        for path in sorted(p for p in input_dir.rglob("*") if p.is_file())
    }
    for path in _files(output_dir / output_prefix):
        found = _owner(entries, path.relative_to(output_dir / output_prefix).as_posix(), _OUTPUT_NAME)
        if found:
            entry, match = found
            entry.outputs.append(_Output(match["name"] or "cutout", path))
    for path in _files(output_dir / failure_prefix):
        found = _owner(entries, path.relative_to(output_dir / failure_prefix).as_posix(), _REPORT_NAME)
        if found:
            entry, match = found
            report = _read_report(path)
            entry.failures.append(
                _Failure(match["name"] or report.get("output"), report.get("reason", "?"), report.get("message", ""))
            )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(_page(list(entries.values()), out_file.parent), encoding="utf-8")
    return len(entries)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _owner(entries: dict[str, _Entry], key: str, pattern: re.Pattern[str]) -> tuple[_Entry, re.Match[str]] | None:
    """The input whose key this output or report key extends; the longest wins (``a`` vs ``a.web``)."""
    best: tuple[_Entry, re.Match[str]] | None = None
    for relative, entry in entries.items():
        match = pattern.match(key[len(relative) :]) if key.startswith(relative) else None
        if match and (best is None or len(relative) > len(best[0].relative)):
            best = (entry, match)
    return best


def _read_report(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"reason": "unreadable-report", "message": f"{path.name} is not a JSON report"}
    return {k: str(v) for k, v in doc.items() if v is not None} if isinstance(doc, dict) else {}


def _href(path: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(path.resolve(), base.resolve())).as_posix(), safe="/")


def _describe(path: Path) -> str:
    """Size in pixels and bytes, from the header only."""
    size = f"{path.stat().st_size / 1024:,.0f} KB"
    try:
        from PIL import Image

        with Image.open(path) as image:
            return f"{image.width}×{image.height} {image.format or ''} · {size}"
    except Exception:  # noqa: BLE001 - a sheet never fails on one odd file
        return size


def _preview(path: Path) -> str | None:
    """A JPEG data URI for an input a browser cannot show, or None when it cannot be read."""
    try:
        from PIL import Image, ImageOps

        if path.suffix.lower() in (".heic", ".heif"):
            from pillow_heif import register_heif_opener

            register_heif_opener()
        with Image.open(path) as image:
            preview = ImageOps.exif_transpose(image).convert("RGB")
            preview.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
            buffer = io.BytesIO()
            preview.save(buffer, "JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    except Exception:  # noqa: BLE001
        return None


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } .summary { color: #555; }
.row { display: flex; gap: 16px; align-items: flex-start; padding: 16px 0; border-top: 1px solid #ddd;
  overflow-x: auto; }
figure { margin: 0; flex: 0 0 auto; width: 220px; }
figure img { display: block; max-width: 220px; max-height: 220px; margin: auto; }
.frame { display: flex; align-items: center; justify-content: center; width: 220px; height: 220px; }
.input .frame { background: #f4f4f4; }
.output .frame { background: repeating-conic-gradient(#ccc 0% 25%, #fff 0% 50%) 50% / 16px 16px; }
figcaption { font-size: 12px; margin-top: 4px; word-break: break-all; }
figcaption b { font-size: 13px; } .meta { color: #666; }
.failed .frame { background: #fdecea; color: #8a1c13; padding: 8px; box-sizing: border-box;
  font-size: 12px; overflow: auto; align-items: flex-start; justify-content: flex-start; flex-direction: column; }
.reason { font-weight: bold; }
"""


def _page(entries: list[_Entry], base: Path) -> str:
    outputs = sum(len(e.outputs) for e in entries)
    failed = sum(1 for e in entries if e.failures)
    rows = "\n".join(_row(entry, base) for entry in entries)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Cutouts contact sheet</title>
<style>{_STYLE}</style></head>
<body>
<h1>Cutouts contact sheet</h1>
<p class="summary">{len(entries)} inputs · {outputs} outputs · {failed} with a failure report.
Outputs are shown on a checkerboard: what is checkered is transparent.</p>
{rows}
</body></html>
"""


def _row(entry: _Entry, base: Path) -> str:
    e = html.escape
    source = _preview(entry.path) if entry.path.suffix.lower() in _BROWSER_CANNOT_SHOW else None
    note = " (preview)" if source else ""
    cells = [
        f'<figure class="input"><div class="frame"><a href="{_href(entry.path, base)}">'
        f'<img src="{source or _href(entry.path, base)}" alt="{e(entry.relative)}"></a></div>'
        f"<figcaption><b>{e(entry.relative)}</b>{note}<br><span class=meta>input · "
        f"{e(_describe(entry.path))}</span></figcaption></figure>"
    ]
    for output in sorted(entry.outputs, key=lambda o: (o.name != "cutout", o.name)):
        href = _href(output.path, base)
        cells.append(
            f'<figure class="output"><div class="frame"><a href="{href}"><img src="{href}" '
            f'alt="{e(output.name)} of {e(entry.relative)}"></a></div>'
            f"<figcaption><b>{e(output.name)}</b><br><span class=meta>{e(_describe(output.path))}</span>"
            f"</figcaption></figure>"
        )
    for failure in entry.failures:
        title = f"output {failure.output} failed" if failure.output else "failed"
        cells.append(
            f'<figure class="failed"><div class="frame"><span class="reason">{e(failure.reason)}</span>'
            f"<span>{e(failure.message)}</span></div><figcaption><b>{e(title)}</b></figcaption></figure>"
        )
    if not entry.outputs and not entry.failures:
        cells.append(
            '<figure class="failed"><div class="frame"><span class="reason">no output</span>'
            "<span>Neither an output nor a report was found (the run timed out?).</span></div></figure>"
        )
    return '<div class="row">' + "".join(cells) + "</div>"
