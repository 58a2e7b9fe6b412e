"""Peak memory of preparing an upload (``python -m bench.prepare [WIDTH HEIGHT]``), in frames.

The function that renders also prepares uploads (normalises them, or takes an already cut-out one
as its master), so its memory must cover both. Three inputs of the same photo-like picture, each
measured in a fresh process as peak RSS (VmHWM) over a process that imported the same modules,
against one decoded RGBA frame (w x h x 4):

- an already cut-out RGBA PNG: ``already_cut_out`` then ``master_from_cut_out``;
- a JPEG stored turned with EXIF Orientation 6: ``already_cut_out`` (answered from the head), then
  ``normalise`` (decode, turn upright: a second frame, encode JPEG);
- an RGBA PNG whose alpha is opaque everywhere: ``already_cut_out`` decodes it, ``normalise`` passes it on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import FUNCTIONS, ROOT, Row

MB = 1024 * 1024

_MEASURE = """
import json, sys
sys.path.insert(0, {functions!r})
from PIL import Image, PngImagePlugin, JpegImagePlugin
from cutouts.normalising import already_cut_out, master_from_cut_out, normalise
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
base = hwm()
data = open({path!r}, "rb").read()
if already_cut_out(data):
    out = master_from_cut_out(data, 10**10)
else:
    out = normalise(data, 10**10).data
print(json.dumps({{"peak_mb": hwm() - base, "input_mb": len(data) / 2**20, "output_mb": len(out) / 2**20}}))
"""

_MAKE = """
import sys
sys.path[:0] = [{root!r}, {functions!r}]
from pathlib import Path
from PIL import Image
from bench.render import make_master
folder = Path({folder!r})
make_master({size!r}, folder / "cut-out.png")
cut = Image.open(folder / "cut-out.png")
rgb = cut.convert("RGB")
del cut
exif = Image.Exif()
exif[0x0112] = 6
rgb.save(folder / "turned.jpg", quality=90, exif=exif.tobytes())
rgb.convert("RGBA").save(folder / "opaque-alpha.png", compress_level=1)
"""

INPUTS = {
    "cut-out.png": "already cut out RGBA PNG -> master",
    "turned.jpg": "JPEG with EXIF Orientation 6 -> upright JPEG",
    "opaque-alpha.png": "RGBA PNG, alpha opaque -> passed on as it is",
}


def _child(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


def run(size: tuple[int, int] = (8000, 6000)) -> list[Row]:
    frame_mb = size[0] * size[1] * 4 / MB
    rows = []
    with tempfile.TemporaryDirectory(prefix="cutouts-bench-prepare-") as folder:
        _child(_MAKE.format(root=str(ROOT), functions=str(FUNCTIONS), folder=folder, size=size))
        for name, what in INPUTS.items():
            path = str(Path(folder) / name)
            found = json.loads(_child(_MEASURE.format(functions=str(FUNCTIONS), path=path)).strip().splitlines()[-1])
            ratio = found["peak_mb"] / frame_mb
            rows.append(
                Row(
                    "7 preparing",
                    f"peak memory, {what}, {size[0]}x{size[1]}",
                    round(found["peak_mb"], 1),
                    "MB",
                    round(frame_mb, 1),
                    "one RGBA frame (w*h*4)",
                    round(ratio, 3),
                    "-",
                    None,
                    1,
                    note=f"input {found['input_mb']:.0f} MB, output {found['output_mb']:.0f} MB (both included)",
                )
            )
    return rows


if __name__ == "__main__":
    from bench.__main__ import print_table

    size = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (8000, 6000)
    print_table(run(size))
