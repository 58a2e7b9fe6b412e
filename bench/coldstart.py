"""Row 1: cold start, as the time to import each handler module in a fresh interpreter.

The package is measured as it ships: built by infra.packaging, with bytecode compiled for the
interpreter that imports it (the asset carries bytecode for Lambda's Python 3.13; the bench's
interpreter is this machine's). The same import from plain source is measured alongside, so the
note shows what the bytecode saves.

Every sample is a new ``python`` process with the environment Lambda gives the deployed
function (tracing active, so the Tracer loads the X-Ray SDK as it does in the cloud). The child
times the import itself with ``perf_counter``; the parent also records the whole process's wall
time (interpreter start included). Baseline: a bare ``import boto3`` in a fresh interpreter,
interleaved with the handlers so machine noise hits both alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import FUNCTIONS, Row, lambda_like_env, median, ratio

TARGET_RATIO = 1.3
HANDLERS = {
    "submit": "cutouts.handlers.submit",
    "webhook": "cutouts.handlers.webhook",
    "reconcile": "cutouts.handlers.reconcile",
}
# The Powertools a handler cannot do without, set up as our observability module does it (Logger,
# Metrics, Tracer with its X-Ray patches), plus the utility the handler is built on. Measured too:
# what lies between this and the handler's figure is our own package.
LIBRARIES = {
    "submit": "cutouts.observability, aws_lambda_powertools.utilities.batch",
    "webhook": "cutouts.observability, aws_lambda_powertools.utilities.data_classes",
    "reconcile": "cutouts.observability",
}
_CHILD = (
    "import time, json, sys\n"
    "t = time.perf_counter()\n"
    "import {module}\n"
    "elapsed = time.perf_counter() - t\n"
    "modules = len(sys.modules)\n"
    "t = time.perf_counter()\n"
    "{first_use}\n"
    "first_use = time.perf_counter() - t\n"
    "print(json.dumps({{'import_s': elapsed, 'first_use_s': first_use, 'modules': modules}}))\n"
)
# Not in the figure, reported beside it: the handlers make their AWS clients (and so import boto3)
# on first use, which the first invocation pays; the baseline's equivalent is the same clients.
_FIRST_USE = {
    "boto3": "[boto3.client(name, region_name='us-east-1') for name in ('s3', 'dynamodb', 'sqs')]",
    "handler": "from cutouts import runtime; runtime._clients()",
    "libraries": "pass",
}


def time_import(
    module: str, function_name: str, functions_dir: Path | None = None, first_use: str = "handler"
) -> dict[str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(module=module, first_use=_FIRST_USE[first_use])],
        env=lambda_like_env(function_name, functions_dir=functions_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "import_s": result["import_s"],
        "first_use_s": result["first_use_s"],
        "wall_s": wall,
        "modules": result["modules"],
    }


def shipped_copy(into: Path) -> Path:
    """The functions' asset as infra.packaging builds it, compiled for this interpreter."""
    from infra.packaging import build_package

    build_package(FUNCTIONS, into, sys.executable)
    return into


def run(n: int = 7, functions_dir: Path | None = None) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="cutouts-asset-") as tmp:
        shipped = functions_dir or shipped_copy(Path(tmp))
        return _measure(n, shipped, source=None if functions_dir else FUNCTIONS)


def _measure(n: int, shipped: Path, source: Path | None) -> list[Row]:
    # label -> (module, function name, functions dir, first use)
    targets: dict[str, tuple[str, str, Path, str]] = {"boto3": ("boto3", "baseline", shipped, "boto3")}
    targets |= {name: (module, name, shipped, "handler") for name, module in HANDLERS.items()}
    targets |= {f"{name} (libraries)": (LIBRARIES[name], name, shipped, "libraries") for name in HANDLERS}
    if source is not None:
        targets |= {f"{name} (source)": (module, name, source, "handler") for name, module in HANDLERS.items()}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for target in targets.values():  # one untimed pass: warm the page cache
        time_import(*target)
    for i in range(n):
        order = list(targets.items())
        if i % 2:
            order.reverse()
        for name, target in order:
            samples[name].append(time_import(*target))

    def med(name: str, key: str) -> float:
        return median([s[key] for s in samples[name]])

    base = med("boto3", "import_s")
    base_wall = med("boto3", "wall_s")
    rows = []
    for name in HANDLERS:
        figure = med(name, "import_s")
        r = ratio(figure, base)
        from_source = med(f"{name} (source)", "import_s") if source is not None else None
        libraries = med(f"{name} (libraries)", "import_s")
        rows.append(
            Row(
                section="1 cold start",
                name=f"import {name} handler",
                figure=round(figure * 1000, 1),
                unit="ms",
                baseline=round(base * 1000, 1),
                baseline_name="bare `import boto3`",
                ratio=r,
                target=f"<= {TARGET_RATIO}x",
                met=r is not None and r <= TARGET_RATIO,
                n=n,
                note=(
                    "as shipped (bytecode); "
                    f"its Powertools alone ({LIBRARIES[name]}) {libraries * 1000:.0f} ms "
                    f"({libraries / base:.2f}x), so our package adds {(figure - libraries) * 1000:.0f} ms; "
                    + (
                        f"from plain source {from_source * 1000:.0f} ms ({from_source / base:.2f}x); "
                        if from_source is not None
                        else ""
                    )
                    + "the first invocation then makes its AWS clients (boto3 loads): "
                    f"+{med(name, 'first_use_s') * 1000:.0f} ms, vs +{med('boto3', 'first_use_s') * 1000:.0f} ms "
                    "for the same clients after the bare import; "
                    f"whole process (interpreter start, import, clients) {med(name, 'wall_s') * 1000:.0f} ms vs "
                    f"{base_wall * 1000:.0f} ms ({med(name, 'wall_s') / base_wall:.2f}x)"
                ),
                details={
                    "module": HANDLERS[name],
                    "import_ms": [round(s["import_s"] * 1000, 1) for s in samples[name]],
                    "wall_ms": [round(s["wall_s"] * 1000, 1) for s in samples[name]],
                    "baseline_import_ms": [round(s["import_s"] * 1000, 1) for s in samples["boto3"]],
                    "from_source_ms": round(from_source * 1000, 1) if from_source is not None else None,
                    "first_use_ms": round(med(name, "first_use_s") * 1000, 1),
                    "libraries_ms": round(libraries * 1000, 1),
                    "baseline_first_use_ms": round(med("boto3", "first_use_s") * 1000, 1),
                    "modules_loaded": int(med(name, "modules")),
                    "wall_ratio": round(med(name, "wall_s") / base_wall, 3),
                },
            )
        )
    return rows
