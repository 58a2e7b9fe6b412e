"""Row 1: cold start, as the time to import each handler module in a fresh interpreter.

Measured as it ships: the functions' asset built by infra.packaging and the dependency layer
built by infra.layers (Powertools and the AWS SDK, pinned, wheels for the runtime), both compiled
by the runtime's Python (3.13) and imported by that Python with nothing else on its path (``-S``:
no site-packages), the asset first and the layer after it, as Lambda orders ``/var/task`` and
``/opt/python``. Where no Python 3.13 is installed, or the package index cannot be reached to
build the layer, the rows fall back to this interpreter with its own site-packages and say so.
Each row names its interpreter. The same import from plain source is measured alongside, so the
note shows what the bytecode saves.

Every sample is a new ``python`` process with the environment Lambda gives the deployed
function (tracing active, so the Tracer loads the X-Ray SDK as it does in the cloud). The child
times the import itself with ``perf_counter``; the parent also records the whole process's wall
time (interpreter start included). Baseline: a bare ``import boto3`` by the same interpreter
with the same path (so the SDK the layer ships), interleaved with the handlers so machine noise
hits both alike.

``python -m bench.coldstart --sdk`` measures the choice of shipping the SDK in the layer (README,
"Performance"): the layer's size with and without it, and ``import boto3`` from the layer against
an SDK elsewhere on the path, compiled or not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bench.common import FUNCTIONS, Row, lambda_like_env, median, ratio

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")  # infra.layers loads aws_cdk

TARGET_RATIO = 1.15
# The SDK and what only it needs: what the layer would leave to the runtime if it did not ship it.
SDK_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "python_dateutil", "six", "urllib3")
SDK_TOP_LEVEL = ("boto3", "botocore", "s3transfer", "dateutil", "six.py", "urllib3")
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


@dataclass(frozen=True)
class Shipped:
    """What the children import: an interpreter, and the folders put first on its path."""

    python: str
    path: tuple[Path, ...]  # the asset (the functions' code), then the layer
    site_packages: bool  # False: -S, nothing but the stdlib besides ``path``
    label: str

    def command(self, code: str) -> list[str]:
        return [self.python, *([] if self.site_packages else ["-S"]), "-B", "-c", code]


def time_import(module: str, function_name: str, shipped: Shipped, first_use: str = "handler") -> dict[str, float]:
    start = time.perf_counter()
    asset = shipped.path[0]
    done = subprocess.run(
        shipped.command(_CHILD.format(module=module, first_use=_FIRST_USE[first_use])),
        env=lambda_like_env(function_name, extra={"PYTHONPATH": ":".join(map(str, shipped.path))}, functions_dir=asset),
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


def _interpreter_label(python: str) -> str:
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"Python {version} ({python})"


class Builds(NamedTuple):
    shipped: Shipped  # the asset and the dependency layer as synthesis ships them
    from_source: Shipped  # the same, the asset as plain source
    host_twin: Shipped | None  # the same pins' wheels for this machine, when it is not arm64
    fallback: str  # why the rows could not use the runtime's Python and the layer, or ""


def shipped_builds(into: Path, functions_dir: Path | None = None) -> Builds:
    """Build what the rows import: the asset and the dependency layer, compiled by the runtime's Python."""
    from infra.layers import (
        DEPENDENCY_REQUIREMENTS,
        LayerBuildError,
        build_layer,
        machine_platform_tags,
        runtime_python_version,
    )
    from infra.packaging import build_package, find_python

    python = find_python(runtime_python_version())
    source = functions_dir or FUNCTIONS
    reason = ""
    if python is not None:
        try:
            layer = build_layer(DEPENDENCY_REQUIREMENTS, into / "layer", python)
        except LayerBuildError as error:
            reason = f"the layer could not be built ({str(error).splitlines()[0]})"
        else:
            asset = functions_dir or into / "asset"
            if functions_dir is None:
                build_package(FUNCTIONS, asset, python)
            label = _interpreter_label(python)
            host, twin = platform.machine(), None
            if host not in ("aarch64", "arm64"):
                label += (
                    f"; on this {host} host the layer's aarch64 extension (wrapt's) cannot load, "
                    "so wrapt runs its pure-Python fallback"
                )
                try:
                    twin_layer = build_layer(
                        DEPENDENCY_REQUIREMENTS, into / "twin", python, platforms=machine_platform_tags(host)
                    )
                    twin = Shipped(python, (asset, twin_layer), False, f"{label} ({host} wheels)")
                except LayerBuildError:
                    twin = None
            return Builds(
                Shipped(python, (asset, layer), False, label), Shipped(python, (source, layer), False, label), twin, ""
            )
    else:
        reason = f"no Python {runtime_python_version()} on this machine"
    asset = functions_dir or into / "asset"
    if functions_dir is None:
        build_package(FUNCTIONS, asset, sys.executable)
    label = f"{_interpreter_label(sys.executable)} with its site-packages, not the layer: {reason}"
    here = Shipped(sys.executable, (asset,), True, label)
    return Builds(here, Shipped(sys.executable, (source,), True, label), None, reason)


def run(n: int = 7, functions_dir: Path | None = None) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="cutouts-shipped-") as tmp:
        builds = shipped_builds(Path(tmp), functions_dir)
        source = None if functions_dir else builds.from_source
        return _measure(n, builds.shipped, source=source, twin=builds.host_twin)


def _measure(n: int, shipped: Shipped, source: Shipped | None, twin: Shipped | None = None) -> list[Row]:
    # label -> (module, function name, what to import from, first use)
    targets: dict[str, tuple[str, str, Shipped, str]] = {"boto3": ("boto3", "baseline", shipped, "boto3")}
    targets |= {name: (module, name, shipped, "handler") for name, module in HANDLERS.items()}
    targets |= {f"{name} (libraries)": (LIBRARIES[name], name, shipped, "libraries") for name in HANDLERS}
    if source is not None:
        targets |= {f"{name} (source)": (module, name, source, "handler") for name, module in HANDLERS.items()}
    if twin is not None:
        targets["boto3 (host wheels)"] = ("boto3", "baseline", twin, "boto3")
        targets |= {f"{name} (host wheels)": (module, name, twin, "handler") for name, module in HANDLERS.items()}
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
        host_ratio = med(f"{name} (host wheels)", "import_s") / med("boto3 (host wheels)", "import_s") if twin else None
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
                    f"as shipped (asset and layer, bytecode) on {shipped.label}; "
                    f"its Powertools alone ({LIBRARIES[name]}) {libraries * 1000:.0f} ms "
                    f"({libraries / base:.2f}x), so our package adds {(figure - libraries) * 1000:.0f} ms; "
                    + (
                        f"from plain source {from_source * 1000:.0f} ms ({from_source / base:.2f}x); "
                        if from_source is not None
                        else ""
                    )
                    + (
                        f"with the same pins' wheels for this host (its C extensions load, as the aarch64 ones do "
                        f"on Lambda) {med(f'{name} (host wheels)', 'import_s') * 1000:.0f} ms against "
                        f"{med('boto3 (host wheels)', 'import_s') * 1000:.0f} ms ({host_ratio:.2f}x); "
                        if host_ratio is not None
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
                    "interpreter": shipped.label,
                    "import_ms": [round(s["import_s"] * 1000, 1) for s in samples[name]],
                    "wall_ms": [round(s["wall_s"] * 1000, 1) for s in samples[name]],
                    "baseline_import_ms": [round(s["import_s"] * 1000, 1) for s in samples["boto3"]],
                    "from_source_ms": round(from_source * 1000, 1) if from_source is not None else None,
                    "host_wheels_ratio": round(host_ratio, 3) if host_ratio is not None else None,
                    "first_use_ms": round(med(name, "first_use_s") * 1000, 1),
                    "libraries_ms": round(libraries * 1000, 1),
                    "baseline_first_use_ms": round(med("boto3", "first_use_s") * 1000, 1),
                    "modules_loaded": int(med(name, "modules")),
                    "wall_ratio": round(med(name, "wall_s") / base_wall, 3),
                },
            )
        )
    return rows


def _zipped_bytes(folder: Path, into: Path) -> int:
    """The layer's zip as CDK makes it (deflate), its files under ``python/``."""
    with zipfile.ZipFile(into, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path("python") / path.relative_to(folder))
    return into.stat().st_size


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _is_sdk(path: Path) -> bool:
    name = path.name.split(".cpython-")[0] + (".py" if ".cpython-" in path.name else "")
    dist = path.name.split("-")[0].lower() if path.name.endswith(".dist-info") else None
    return name in SDK_TOP_LEVEL or dist in SDK_DISTRIBUTIONS


def sdk_choice(n: int = 9) -> dict[str, object]:
    """Ship boto3 in the layer or not: the layer's size both ways, and what ``import boto3`` costs.

    Without the SDK in the layer, it comes from the runtime (``/var/runtime``, after ``/opt/python``
    on Lambda's path); whether that copy carries bytecode is not something we can see offline, so
    both are measured (same SDK version, compiled by 3.13, and as plain source).
    """
    from infra.layers import DEPENDENCY_REQUIREMENTS, build_layer, runtime_python_version
    from infra.packaging import find_python

    python = find_python(runtime_python_version())
    if python is None:
        raise SystemExit(f"no Python {runtime_python_version()} here: the layer's bytecode cannot be built")
    with tempfile.TemporaryDirectory(prefix="cutouts-sdk-") as tmp:
        root = Path(tmp)
        with_sdk = build_layer(DEPENDENCY_REQUIREMENTS, root / "with", python)
        without_sdk, runtime_compiled, runtime_source = root / "without", root / "runtime", root / "runtime-src"
        shutil.copytree(with_sdk, without_sdk)
        runtime_compiled.mkdir()
        for path in list(without_sdk.iterdir()) + list((without_sdk / "__pycache__").glob("*")):
            if _is_sdk(path):
                target = runtime_compiled / path.relative_to(without_sdk)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
        shutil.copytree(runtime_compiled, runtime_source, ignore=shutil.ignore_patterns("__pycache__"))
        sizes = {
            "with_sdk": {"unzipped": _tree_bytes(with_sdk), "zipped": _zipped_bytes(with_sdk, root / "w.zip")},
            "without_sdk": {
                "unzipped": _tree_bytes(without_sdk),
                "zipped": _zipped_bytes(without_sdk, root / "wo.zip"),
            },
        }
        cases: dict[str, tuple[Path, ...]] = {
            "SDK in the layer (compiled)": (with_sdk,),
            "SDK from the runtime, compiled": (without_sdk, runtime_compiled),
            "SDK from the runtime, source only": (without_sdk, runtime_source),
        }
        child = "import time; t = time.perf_counter(); import boto3; print(time.perf_counter() - t)"
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(n + 1):
            order = list(cases.items())
            for name, folders in reversed(order) if i % 2 else order:
                done = subprocess.run(
                    [python, "-S", "-B", "-c", child],
                    env=lambda_like_env("baseline", extra={"PYTHONPATH": ":".join(map(str, folders))}),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                if i:  # the first pass only warms the page cache
                    samples[name].append(float(done.stdout))
        return {
            "interpreter": _interpreter_label(python),
            "n": n,
            "layer_bytes": sizes,
            "import_boto3_ms": {name: round(median(values) * 1000, 1) for name, values in samples.items()},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__)
    parser.add_argument("--sdk", action="store_true", help="measure shipping the AWS SDK in the layer or not")
    parser.add_argument("-n", type=int, default=9, help="fresh interpreters per figure")
    args = parser.parse_args(argv)
    if args.sdk:
        print(json.dumps(sdk_choice(args.n), indent=2))
        return 0
    from bench.__main__ import print_table

    print_table(run(n=args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
