"""``make bench``: cold start, per-image work, memory, throughput, dollars and the scale model.

Every figure is a median over ``n`` repetitions, next to a baseline measured in the same run.
The table is printed and written to bench/results.json. ``--quick`` runs fewer repetitions and
a smaller throughput batch (a minute or so instead of a few).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, Row

SECTIONS = ("coldstart", "perimage", "memory", "throughput", "cost", "render", "scale")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 100 images for throughput")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--images", type=int, help="images for the throughput run (default 500, quick 100)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--functions", type=Path, help="measure cold start of another copy of functions/")
    return parser.parse_args(argv)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    """A ratio as 1.23x; one under 1% as a percentage (the AWS bill against the gateway's: 0.12%)."""
    if value is None:
        return "-"
    return f"{value:.2%}" if abs(value) < 0.01 else f"{value:.2f}x"


def print_table(rows: list[Row]) -> None:
    headers = ["#", "figure", "value", "baseline (same run)", "ratio", "target", "met", "n"]
    body = [
        [
            row.section,
            row.name,
            f"{_fmt(row.figure)} {row.unit}",
            f"{_fmt(row.baseline)} {row.unit if row.baseline is not None else ''} {row.baseline_name}".strip(),
            _ratio(row.ratio),
            row.target,
            {True: "yes", False: "NO", None: "-"}[row.met],
            str(row.n),
        ]
        for row in rows
    ]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="Cutouts benchmark (medians)", show_lines=True)
        for header in headers:
            table.add_column(header, overflow="fold")
        for line in body:
            table.add_row(*line)
        console = Console(width=200)
        console.print(table)
        for row in rows:
            if row.note:
                console.print(f"[dim]{row.section} / {row.name}:[/dim] {row.note}", highlight=False)
    except ImportError:  # pragma: no cover - rich is in requirements-dev
        print(" | ".join(headers))
        for line in body:
            print(" | ".join(line))
        for row in rows:
            print(f"  {row.section} / {row.name}: {row.note}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    quick = args.quick
    only = set(args.only or SECTIONS)
    if "cost" in only:
        only |= {"perimage", "coldstart"}  # dollars are computed from those measurements
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        print(f"[bench] {name} ... ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    if "coldstart" in only:
        from bench import coldstart

        step("cold start")
        rows += coldstart.run(n=5 if quick else 9, functions_dir=args.functions)
    measured: dict[str, Any] = {}
    if "perimage" in only:
        from bench import perimage

        step("per-image work")
        found, measured = perimage.run(n=7 if quick else 21, warmup=2 if quick else 3)
        rows += found
    if "memory" in only:
        from bench import memory

        step("memory")
        rows += memory.run(n=1 if quick else 3)
    if "throughput" in only:
        from bench import throughput

        images = args.images or (100 if quick else 500)
        step(f"throughput ({images} images)")
        found, profiled = throughput.run(images=images, profile_images=40 if quick else 150)
        rows += found
        extra["throughput_profile_top_functions"] = profiled["top_functions"]
    if "cost" in only and measured:
        from bench import cost

        step("dollars")
        cold = max(r.figure for r in rows if r.section == "1 cold start")
        found, _ = cost.run(measured, cold_import_ms=cold)
        rows += found

    if "render" in only:
        from bench import render

        step("rendering the shop profile (12 MP and 48 MP masters)")
        rows += render.run(n=1 if quick else 3)

    scale_results: list[dict[str, Any]] = []
    if "scale" in only:
        from bench import scale

        step("scale model" + (" (1/50 scale)" if quick else ", a million-image day"))
        scale_results = scale.run(scale=0.02 if quick else 1.0)
        extra["scale"] = [{k: v for k, v in r.items() if k != "series"} for r in scale_results]
        extra["scale_recommendation"] = scale.recommendation(scale_results)
        extra["scale_plot"] = str(scale.plot(scale_results, args.output.with_name("scale.png")))

    print_table(rows)
    if "throughput" in only and not quick:  # after the results, never before them
        print(
            f"\nProfile of the slowest stage ({profiled['slowest_stage']}); busy seconds by stage "
            f"{profiled['busy_s']}; by package {profiled['slowest_by_package_s']}"
        )
        print(profiled["top_functions"])
    if scale_results:
        from bench import scale

        print("\nScale model (python -m bench.scale; docs/scale.md)" + (" at 1/50 scale" if quick else ""))
        print(scale.table(scale_results))
        print(extra["scale_recommendation"])
        print(f"plot: {extra['scale_plot']}")
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench" + (" --quick" if quick else ""),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds": round(time.perf_counter() - started, 1),
        "rows": [row.as_dict() for row in rows],
        **extra,
    }
    args.output.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(
        f"\nwrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output} "
        f"in {document['seconds']} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
