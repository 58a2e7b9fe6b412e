"""The functions' Python dependencies as Lambda layers of our own, built without Docker.

Each layer is one pinned requirements file installed by pip for the runtime's Python and
architecture (wheels only, ``--platform``/``--python-version``, so the build machine's own Python
and CPU do not matter), then compiled to bytecode by a Python of the runtime's minor version:
``/opt`` is read-only, so a layer shipped as source is compiled again on every cold start. The
requirements files are the ones ``requirements.txt`` includes, so the tests and the benchmarks run
exactly the versions deployed (``tests/infra/test_layers.py`` fails when they differ).

``build_layer`` is a plain function (no CDK) so the tests and ``bench/coldstart.py`` build the
same tree synthesis ships.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import Annotations, AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.functions import ARCHITECTURE, RUNTIME
from infra.packaging import find_python

ROOT = Path(__file__).resolve().parent.parent
# Powertools (with the tracer extra) and the AWS SDK, every distribution pinned: what every function imports.
DEPENDENCY_REQUIREMENTS = ROOT / "requirements-lambda.txt"
# Pillow and pillow-heif: only for a function that decodes images (none of today's three).
IMAGING_REQUIREMENTS = ROOT / "requirements-imaging.txt"
# manylinux_2_28 fits the python3.13 runtime (Amazon Linux 2023, glibc 2.34); 2014 for older wheels.
_MANYLINUX = ("manylinux_2_28", "manylinux2014")
_MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}


class LayerBuildError(RuntimeError):
    """pip could not install a layer's requirements (no index, or a pin with no wheel for the runtime)."""


def runtime_python_version(runtime: lambda_.Runtime = RUNTIME) -> str:
    """``python3.13`` -> ``3.13``: the one Python the wheels and the bytecode are for."""
    return runtime.name.removeprefix("python")


def platform_tags(architecture: lambda_.Architecture = ARCHITECTURE) -> tuple[str, ...]:
    """pip ``--platform`` tags for the functions' architecture, newest glibc first."""
    return machine_platform_tags(_MACHINES[architecture.name])


def machine_platform_tags(machine: str) -> tuple[str, ...]:
    """The same tags for a machine name (``aarch64``, ``x86_64``): the bench builds a twin for its host."""
    return tuple(f"{tag}_{machine}" for tag in _MANYLINUX)


def pip_install_command(requirements: Path, target: Path, python_version: str, platforms: tuple[str, ...]) -> list[str]:
    """pip, run by this interpreter, installing wheels for the runtime into ``target``.

    ``--no-compile``: pip would write bytecode for *this* interpreter, which the runtime ignores.
    """
    platform_args = [arg for tag in platforms for arg in ("--platform", tag)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        *platform_args,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]


def build_layer(
    requirements: Path,
    output: Path,
    python: str | None,
    *,
    python_version: str | None = None,
    platforms: tuple[str, ...] | None = None,
) -> Path:
    """Install ``requirements`` into ``output/python`` (where Lambda looks) and compile it with ``python``.

    ``python`` must be of the runtime's minor version (bytecode is version-specific) or None, and
    then the layer ships as source: correct, only slower to load. Returns ``output/python``.
    """
    python_version = python_version or runtime_python_version()
    site = output / "python"
    done = subprocess.run(
        pip_install_command(requirements, site, python_version, platforms or platform_tags()),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise LayerBuildError(
            f"pip could not install {requirements.name} for python{python_version} on {platforms or platform_tags()} "
            f"(is the package index reachable?):\n{done.stderr[-3000:]}"
        )
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: nothing in Lambda runs them
    if python:
        subprocess.run(
            [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(site)],
            check=True,
            timeout=600,
        )
    return site


def layer_fingerprint(requirements: Path, python_version: str, platforms: tuple[str, ...], bytecode: bool) -> str:
    """The asset hash: what decides the layer's bytes (the pins, the platform, the bytecode), not a folder."""
    facts = {
        "requirements": requirements.read_text(),
        "python": python_version,
        "platforms": list(platforms),
        "bytecode": f"cpython-{python_version}" if bytecode else "none",
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


@jsii.implements(ILocalBundling)
class LocalLayerBundler:
    """CDK's local bundling hook: ``build_layer`` on this machine, so Docker is never needed."""

    def __init__(self, requirements: Path, python: str | None) -> None:
        self.requirements, self.python = requirements, python

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        # Never False: CDK would fall back to Docker, which these machines do not have.
        build_layer(self.requirements, Path(output_dir), self.python)
        return True


def requirements_layer(
    scope: Construct, construct_id: str, requirements: Path, description: str
) -> lambda_.LayerVersion:
    """A layer holding ``requirements`` installed for the functions' runtime and architecture."""
    python_version = runtime_python_version()
    platforms = platform_tags()
    python = find_python(python_version)
    if python is None:
        Annotations.of(scope).add_warning_v2(
            "cutouts:layer-without-bytecode",
            f"No Python {python_version} found: layer {construct_id} ships as source, without bytecode "
            "(correct, but every cold start compiles Powertools and the SDK). "
            "Install it (e.g. pyenv) to ship bytecode.",
        )
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description=description,
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        # The source folder is only where the build starts; the hash is what the layer is made of.
        code=lambda_.Code.from_asset(
            str(requirements.parent),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=layer_fingerprint(requirements, python_version, platforms, python is not None),
            bundling=BundlingOptions(
                image=RUNTIME.bundling_image,
                # jsii hands try_bundle the options as one struct; the typed stub spells them out as keywords
                local=LocalLayerBundler(requirements, python),  # type: ignore[arg-type]
            ),
        ),
    )


def dependency_layer(scope: Construct) -> lambda_.ILayerVersion:
    """Powertools (tracer extra) and the AWS SDK at exactly the versions the tests run; every function has it."""
    return requirements_layer(
        scope, "DependencyLayer", DEPENDENCY_REQUIREMENTS, "Cutouts: Powertools and the AWS SDK, pinned, compiled"
    )


def imaging_layer(scope: Construct) -> lambda_.ILayerVersion:
    """Pillow and pillow-heif, pinned, for a function that decodes images (attached by that function)."""
    return requirements_layer(scope, "ImagingLayer", IMAGING_REQUIREMENTS, "Cutouts: Pillow and pillow-heif, pinned")
