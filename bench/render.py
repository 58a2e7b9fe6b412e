"""Row 6: rendering the issue's four ``shop`` outputs from a 12 MP and a 48 MP master.

Time: ``render_profile`` over the four outputs (cutout, white jpeg canvas, web webp, mask),
against a floor measured in the same run with the same library: one decode and one PNG encode of
that master (at the PNG compression level rendering uses). Target: at most 2.5x the floor.

Memory: Pillow's pixel buffers are C allocations tracemalloc cannot see, so each measurement runs
in a fresh process and reports its peak RSS (VmHWM; ``ru_maxrss`` where /proc is missing: on Linux
ru_maxrss survives exec and would report the forking parent's size when that is larger); a baseline
process that only imports Pillow and our modules is subtracted. The figure is compared with one
decoded RGBA frame of the master (w x h x 4 bytes). Target: at most 2x one frame.

The masters are photo-like (smooth colour, fine noise, a soft-edged subject on transparency), made
once into a temporary folder; noise makes them compress about as badly as real photographs.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import FUNCTIONS, ROOT, Row, median

MB = 1024 * 1024
SIZES = {"12 MP": (4000, 3000), "48 MP": (8000, 6000)}
TIME_TARGET = 2.5
MEMORY_TARGET = 2.0
RUNTIME_OVERHEAD_MB = 160  # Python, Powertools, boto3 and the S3 transfer buffers of a warm function

SHOP = {
    "profiles": {
        "shop": {
            "match": "shop/",
            "outputs": [
                {"name": "cutout", "format": "png"},
                {
                    "name": "white",
                    "format": "jpeg",
                    "background": "#FFFFFF",
                    "crop": "subject",
                    "margin": "8%",
                    "canvas": [2000, 2000],
                    "position": "center",
                    "quality": 90,
                },
                {"name": "web", "format": "webp", "maxSize": 1024},
                {"name": "mask", "format": "png", "mask": True},
            ],
        }
    }
}

_PRELUDE = """
import io, json, resource, sys, time
sys.path.insert(0, {functions!r})
from PIL import Image, PngImagePlugin, JpegImagePlugin, WebPImagePlugin
from cutouts import profiles, rendering
def peak_mb():
    # VmHWM, the peak RSS of this process's own memory since exec; ru_maxrss would also count the
    # forked parent's pages (Linux keeps the larger of the two across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_BASELINE = """
print(json.dumps({{"peak_mb": peak_mb()}}))
"""

_RENDER = """
data = open({path!r}, "rb").read()
shop = profiles.Profiles.parse(json.loads({profile!r})).profiles["shop"]
start = time.perf_counter()
sizes = {{}}
for spec, result in rendering.render_profile(data, shop, 10**9):
    if isinstance(result, rendering.RenderError):
        raise SystemExit(f"{{spec.name}}: {{result.message}}")
    sizes[spec.name] = len(result)
    del result
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "peak_mb": peak_mb(), "sizes": sizes}}))
"""

_MAKE = """
from bench.render import make_master
make_master({size!r}, __import__("pathlib").Path({path!r}))
print("{{}}")
"""

_FLOOR = """
data = open({path!r}, "rb").read()
start = time.perf_counter()
image = Image.open(io.BytesIO(data))
image.load()
out = io.BytesIO()
image.save(out, "PNG", compress_level=rendering.PNG_COMPRESS_LEVEL)
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "peak_mb": peak_mb()}}))
"""


def make_master(size: tuple[int, int], path: Path) -> None:
    """A photo-like RGBA master: smooth colour plus grain, a soft-edged ellipse on transparency."""
    from PIL import Image, ImageChops, ImageDraw

    width, height = size
    colour = Image.effect_noise((width // 100, height // 100), 90).convert("RGB")
    colour = Image.merge(
        "RGB",
        [
            colour.getchannel(0),
            colour.rotate(90, expand=False).getchannel(1),
            colour.transpose(Image.Transpose.FLIP_LEFT_RIGHT).getchannel(2),
        ],
    )
    colour = colour.resize(size, Image.Resampling.BICUBIC)
    grain = Image.effect_noise(size, 10)
    colour = Image.merge("RGB", [ImageChops.add(band, grain, 1.0, -128) for band in colour.split()])
    del grain
    alpha = Image.new("L", (width // 20, height // 20), 0)
    ImageDraw.Draw(alpha).ellipse((width // 200, height // 100, width * 9 // 200, height * 19 // 400), fill=255)
    colour.putalpha(alpha.resize(size, Image.Resampling.BILINEAR))
    colour.save(path, "PNG", compress_level=1)


def _child(code: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE.format(functions=str(FUNCTIONS)) + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def recommended_memory_mb(frame_mb: float, memory_ratio: float) -> int:
    """Rendering memory: the 48 MP frame times the measured ratio, plus the runtime, rounded up to 64 MB."""
    return int(math.ceil((frame_mb * memory_ratio + RUNTIME_OVERHEAD_MB) / 64) * 64)


def run(n: int = 3, sizes: dict[str, tuple[int, int]] | None = None) -> list[Row]:
    rows: list[Row] = []
    profile = json.dumps(SHOP)
    with tempfile.TemporaryDirectory(prefix="cutouts-bench-render-") as folder:
        for label, size in (sizes or SIZES).items():
            path = Path(folder) / f"master-{size[0]}x{size[1]}.png"
            _child(_MAKE.format(size=size, path=str(path)))  # in a child: keeps this process small
            renders, floors, baselines = [], [], []
            for _ in range(n):  # interleaved, so a noisy neighbour hits both alike
                baselines.append(_child(_BASELINE.format())["peak_mb"])
                floors.append(_child(_FLOOR.format(path=str(path))))
                renders.append(_child(_RENDER.format(path=str(path), profile=profile)))
            baseline_mb = median(baselines)
            frame_mb = size[0] * size[1] * 4 / MB
            render_s = median([r["seconds"] for r in renders])
            floor_s = median([f["seconds"] for f in floors])
            render_mb = median([r["peak_mb"] for r in renders]) - baseline_mb
            floor_mb = median([f["peak_mb"] for f in floors]) - baseline_mb
            time_ratio = render_s / floor_s
            memory_ratio = render_mb / frame_mb
            master_mb = path.stat().st_size / MB
            rows.append(
                Row(
                    "6 rendering",
                    f"render the 4 shop outputs, {label} master",
                    round(render_s, 3),
                    "s",
                    round(floor_s, 3),
                    "one decode + one PNG encode",
                    round(time_ratio, 3),
                    f"<= {TIME_TARGET}x",
                    time_ratio <= TIME_TARGET,
                    n,
                    note=f"master {size[0]}x{size[1]}, {master_mb:.0f} MB PNG; output bytes {renders[-1]['sizes']}",
                    details={"renders": renders, "floors": floors},
                )
            )
            rows.append(
                Row(
                    "6 rendering",
                    f"peak memory rendering, {label} master",
                    round(render_mb, 1),
                    "MB",
                    round(frame_mb, 1),
                    "one RGBA frame (w*h*4)",
                    round(memory_ratio, 3),
                    f"<= {MEMORY_TARGET}x",
                    memory_ratio <= MEMORY_TARGET,
                    n,
                    note=(
                        f"peak RSS over a process that only imported Pillow ({baseline_mb:.0f} MB), includes the "
                        f"{master_mb:.0f} MB master bytes; the floor's own peak is {floor_mb:.0f} MB "
                        f"({floor_mb / frame_mb:.2f} frames); recommended rendering memory at this size: "
                        f"{recommended_memory_mb(frame_mb, memory_ratio)} MB"
                    ),
                )
            )
    return rows


if __name__ == "__main__":  # python -m bench.render [n]
    from bench.__main__ import print_table

    print_table(run(n=int(sys.argv[1]) if len(sys.argv) > 1 else 1))
