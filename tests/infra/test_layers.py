"""The layers ship what the tests run: the same pinned versions, as wheels for the runtime's Python
and architecture, with bytecode for that Python; and the stack wires them as intended.

The first tests need nothing but this repository. The ones that build a layer run pip exactly as
synthesis does (once per layer per module) and are skipped, with pip's reason, when the package
index cannot be reached.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match, Template

import infra.layers as layers
from infra.functions import ARCHITECTURE, RUNTIME
from infra.packaging import RUNTIME_PYTHON, build_package, find_python

ROOT = Path(__file__).resolve().parents[2]
LAYER_FILES = {"dependency": layers.DEPENDENCY_REQUIREMENTS, "imaging": layers.IMAGING_REQUIREMENTS}
PIN = re.compile(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;#]+)\s*$")
HANDLERS = ("cutouts.handlers.submit", "cutouts.handlers.webhook", "cutouts.handlers.reconcile")
ELF_MACHINE_AARCH64 = 0xB7


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by canonical name; anything else is refused."""
    pins: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{requirements.name}: {line!r} is not an exact pin (name==version)"
        pins[_canonical(match[1])] = match[3]
    return pins


# ------------------------------------------------------------------ no network needed


@pytest.mark.parametrize("layer", list(LAYER_FILES))
def test_versions_deployed_are_the_versions_the_tests_run(layer: str) -> None:
    # Given the pins a layer is built from
    pins = _pins(LAYER_FILES[layer])
    assert pins
    # Then this interpreter (the tests' and the bench's) has exactly those versions installed
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert installed == pins


def test_requirements_txt_installs_the_layer_files_for_the_tests() -> None:
    included = {
        line.split(None, 1)[1].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("-r ")
    }
    assert {path.name for path in LAYER_FILES.values()} <= included


def test_layer_pins_the_powertools_tracer_and_the_sdk() -> None:
    pins = _pins(layers.DEPENDENCY_REQUIREMENTS)
    assert {"aws-lambda-powertools", "aws-xray-sdk", "boto3", "botocore", "urllib3"} <= set(pins)
    assert "aws-lambda-powertools[tracer]==" in layers.DEPENDENCY_REQUIREMENTS.read_text()
    assert set(_pins(layers.IMAGING_REQUIREMENTS)) == {"pillow", "pillow-heif"}


def test_platform_and_python_come_from_the_functions_runtime_and_architecture() -> None:
    assert layers.runtime_python_version() == RUNTIME_PYTHON == RUNTIME.name.removeprefix("python")
    assert layers.platform_tags() == ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
    assert ARCHITECTURE.name == "arm64"
    assert layers.platform_tags(lambda_.Architecture.X86_64) == ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
    assert layers.runtime_python_version(lambda_.Runtime.PYTHON_3_12) == "3.12"


def test_pip_installs_runtime_wheels_only_and_writes_no_bytecode_of_its_own(tmp_path: Path) -> None:
    command = layers.pip_install_command(Path("r.txt"), tmp_path, "3.13", layers.platform_tags())
    joined = " ".join(command)
    assert "--only-binary=:all:" in command and "--no-compile" in command
    assert "--platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64" in joined
    assert "--implementation cp --python-version 3.13" in joined
    assert f"--target {tmp_path}" in joined and joined.endswith("-r r.txt")


def test_layer_hash_follows_pins_platform_and_bytecode(tmp_path: Path) -> None:
    # Given a requirements file
    reqs = tmp_path / "r.txt"
    reqs.write_text("boto3==1.44.8\n")
    platforms = layers.platform_tags()
    first = layers.layer_fingerprint(reqs, "3.13", platforms, bytecode=True)
    # Then the same inputs give the same hash, and each input that changes the layer changes it
    assert layers.layer_fingerprint(reqs, "3.13", platforms, bytecode=True) == first
    assert layers.layer_fingerprint(reqs, "3.12", platforms, bytecode=True) != first
    assert layers.layer_fingerprint(reqs, "3.13", ("manylinux_2_28_x86_64",), bytecode=True) != first
    assert layers.layer_fingerprint(reqs, "3.13", platforms, bytecode=False) != first
    reqs.write_text("boto3==1.44.9\n")
    assert layers.layer_fingerprint(reqs, "3.13", platforms, bytecode=True) != first


def _layer_stack(build: str) -> tuple[cdk.Stack, Template]:
    app = cdk.App(context={"aws:cdk:bundling-stacks": []}, outdir=os.environ["CDK_OUTDIR"])  # never cdk.out (synth_kit)
    stack = cdk.Stack(app, "Layers")
    {"dependency": layers.dependency_layer, "imaging": layers.imaging_layer}[build](stack)
    return stack, Template.from_stack(stack)


@pytest.mark.parametrize("layer", list(LAYER_FILES))
def test_layer_is_for_the_runtimes_python_and_architecture(layer: str) -> None:
    # When a stack defines the layer
    _, template = _layer_stack(layer)
    (props,) = [r["Properties"] for r in template.to_json()["Resources"].values()]
    # Then it is for python3.13 on arm64, the runtime and architecture of every function
    assert props["CompatibleRuntimes"] == [RUNTIME.name]
    assert props["CompatibleArchitectures"] == [ARCHITECTURE.name]


def _asset_key(requirements: Path) -> str:
    app = cdk.App(context={"aws:cdk:bundling-stacks": []}, outdir=os.environ["CDK_OUTDIR"])  # never cdk.out (synth_kit)
    stack = cdk.Stack(app, "Layer")
    layers.requirements_layer(stack, "Layer", requirements, "test")
    (props,) = [r["Properties"] for r in Template.from_stack(stack).to_json()["Resources"].values()]
    return str(props["Content"]["S3Key"])


def test_layer_asset_changes_with_its_pins_and_not_with_its_folder(tmp_path: Path) -> None:
    # Given the same pins in two folders, one of them full of other files
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("anything")
    for folder in ("a", "b"):
        (tmp_path / folder / "r.txt").write_text("boto3==1.44.8\n")
    # Then both give the same asset (no needless upload), and a changed pin gives a new one
    first = _asset_key(tmp_path / "a" / "r.txt")
    assert _asset_key(tmp_path / "b" / "r.txt") == first
    (tmp_path / "a" / "r.txt").write_text("boto3==1.44.9\n")
    assert _asset_key(tmp_path / "a" / "r.txt") != first


def test_imaging_layer_is_attached_to_the_render_function_only(template_json: dict) -> None:
    # The render function alone decodes images (infra/rendering.py); the others' cold start is unchanged
    resources = template_json["Resources"]
    (imaging,) = [k for k, v in resources.items() if v["Type"] == "AWS::Lambda::LayerVersion" and "Imaging" in k]
    with_imaging = [
        v["Properties"]["Handler"]
        for v in resources.values()
        if v["Type"] == "AWS::Lambda::Function" and {"Ref": imaging} in v["Properties"].get("Layers", [])
    ]
    assert with_imaging == ["cutouts.handlers.render.handler"]


def test_without_the_runtimes_python_synthesis_warns_that_layers_ship_without_bytecode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(layers, "find_python", lambda version: None)
    stack, template = _layer_stack("dependency")
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("No Python 3.13 found"))
    assert warnings, "no warning"
    # and the layer is a different asset from the compiled one (bytecode is part of its hash)
    (props,) = [r["Properties"] for r in template.to_json()["Resources"].values()]
    monkeypatch.undo()
    _, compiled = _layer_stack("dependency")
    (compiled_props,) = [r["Properties"] for r in compiled.to_json()["Resources"].values()]
    assert props["Content"]["S3Key"] != compiled_props["Content"]["S3Key"]


# ------------------------------------------------------------------ built as synthesis builds them


def _build(name: str, into: Path) -> Path:
    python = find_python(RUNTIME_PYTHON)
    try:
        return layers.build_layer(LAYER_FILES[name], into, python)
    except layers.LayerBuildError as error:
        if re.search(r"Could not find a version|connection|Network is unreachable|resolve|timed out", str(error), re.I):
            pytest.skip(f"package index unreachable, layer {name} not built: {str(error)[-300:]}")
        raise


@pytest.fixture(scope="module")
def build_once(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Builds each layer at most once per module, as synthesis builds it; returns its ``python/`` folder."""
    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            built[name] = _build(name, tmp_path_factory.mktemp(f"layer-{name}"))
        return built[name]

    return build


@pytest.fixture(params=list(LAYER_FILES))
def built_layer(request: pytest.FixtureRequest, build_once: Callable[[str], Path]) -> tuple[str, Path]:
    return request.param, build_once(request.param)


def _wheel_tags(site: Path) -> dict[str, list[str]]:
    return {
        wheel.parent.name: [
            line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")
        ]
        for wheel in site.glob("*.dist-info/WHEEL")
    }


def _tag_fits_the_runtime(tag: str) -> bool:
    interpreter, abi, platform = tag.split("-")
    if platform == "any":
        return abi == "none" and interpreter.startswith("py")
    glibc = re.fullmatch(r"manylinux_(\d+)_(\d+)_aarch64|manylinux2014_aarch64", platform)
    if not glibc or (glibc[1] and (int(glibc[1]), int(glibc[2])) > (2, 28)):
        return False
    if abi == "abi3":
        return interpreter.startswith("cp3") and int(interpreter[3:]) <= 13
    return interpreter == abi == "cp313"


def test_tag_check_refuses_other_pythons_and_machines() -> None:
    assert _tag_fits_the_runtime("cp313-cp313-manylinux_2_28_aarch64")
    assert _tag_fits_the_runtime("cp38-abi3-manylinux2014_aarch64")
    assert _tag_fits_the_runtime("py3-none-any")
    assert not _tag_fits_the_runtime("cp311-cp311-manylinux_2_28_aarch64")
    assert not _tag_fits_the_runtime("cp313-cp313-manylinux_2_28_x86_64")
    assert not _tag_fits_the_runtime("cp313-cp313-manylinux_2_35_aarch64")
    assert not _tag_fits_the_runtime("cp313-cp313-musllinux_1_2_aarch64")


def test_every_wheel_is_for_python_313_on_arm64_or_pure(built_layer: tuple[str, Path]) -> None:
    tags = _wheel_tags(built_layer[1])
    assert tags, "no distributions in the layer"
    wrong = {dist: t for dist, t in tags.items() if not t or not all(_tag_fits_the_runtime(tag) for tag in t)}
    assert not wrong


def test_every_shared_library_is_aarch64(built_layer: tuple[str, Path]) -> None:
    libraries = [p for p in built_layer[1].rglob("*") if p.is_file() and re.search(r"\.so(\.|$)", p.name)]
    assert libraries, "each layer carries a compiled extension (wrapt, Pillow)"
    not_arm = []
    for library in libraries:
        header = library.read_bytes()[:20]
        # ELF magic, 64-bit, little-endian; e_machine (offset 18) is EM_AARCH64
        if header[:4] != b"\x7fELF" or header[4] != 2 or int.from_bytes(header[18:20], "little") != ELF_MACHINE_AARCH64:
            not_arm.append(library.name)
    assert not not_arm


def test_every_module_has_bytecode_for_the_runtimes_python(built_layer: tuple[str, Path]) -> None:
    site = built_layer[1]
    if find_python(RUNTIME_PYTHON) is None:
        pytest.skip(f"no Python {RUNTIME_PYTHON} on this machine: the layer ships as source (synthesis warns)")
    tag = f"cpython-{RUNTIME_PYTHON.replace('.', '')}"
    sources = list(site.rglob("*.py"))
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists()]
    assert sources and not missing[:10]
    # and nothing compiled for another Python (pip's own interpreter)
    assert not [p for p in site.rglob("*.pyc") if f".{tag}." not in p.name]


def test_layer_holds_exactly_the_pinned_distributions(built_layer: tuple[str, Path]) -> None:
    name, site = built_layer
    found = {}
    for metadata in site.glob("*.dist-info/METADATA"):
        headers = dict(line.split(": ", 1) for line in metadata.read_text().splitlines() if ": " in line[:40])
        found[_canonical(headers["Name"])] = headers["Version"]
    # Then pip resolved nothing unpinned (the lock is complete) and nothing pinned is missing
    assert found == _pins(LAYER_FILES[name])


@pytest.mark.parametrize("module", HANDLERS)
def test_handler_imports_from_the_asset_and_layer_alone_on_the_runtimes_python(
    module: str, build_once: Callable[[str], Path], tmp_path: Path
) -> None:
    from bench.common import lambda_like_env

    python = find_python(RUNTIME_PYTHON)
    if python is None:
        pytest.skip(f"no Python {RUNTIME_PYTHON} on this machine")
    # Given the asset and the dependency layer as synthesis builds them, and Lambda's environment
    dependency_site = build_once("dependency")
    asset = tmp_path / "asset"
    build_package(ROOT / "functions", asset, python)
    script = (
        "import importlib, importlib.metadata as m, json, sys\n"
        f"sys.path[:0] = {[str(asset), str(dependency_site)]!r}\n"
        f"importlib.import_module({module!r})\n"
        "import aws_lambda_powertools, boto3\n"
        "print(json.dumps({'site': [p for p in sys.path if 'site-packages' in p],"
        " 'files': [aws_lambda_powertools.__file__, boto3.__file__],"
        " 'versions': {n: m.version(n) for n in ('aws-lambda-powertools', 'boto3', 'aws-xray-sdk')}}))\n"
    )
    # When the runtime's Python imports the handler with nothing else on its path (-I -S)
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", script],
        env=lambda_like_env(module.rsplit(".", 1)[1], functions_dir=asset),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    # Then it imports, its libraries come from the layer, at the versions the tests run
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["site"] == []
    assert all(f.startswith(str(dependency_site)) for f in seen["files"])
    assert seen["versions"] == {n: importlib.metadata.version(n) for n in seen["versions"]}
