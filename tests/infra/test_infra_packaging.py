"""The functions' asset, built exactly as synthesis builds it (local bundling, no Docker), imports
each handler with only what the Lambda Python runtime provides plus the dependency layer's
packages, and carries bytecode for the runtime's Python that is loaded without its source.
The layers themselves are built and checked in test_layers.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template
from synth_kit import make_app

import app as cdk_app
from cutouts import constants as c
from cutouts.settings_table import ENV_NAMES
from infra import layers
from infra.functions import RUNTIME
from infra.packaging import RUNTIME_PYTHON, build_package, find_python

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
# What the AWS Lambda Python runtime ships (the AWS SDK and its dependencies).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
# What our dependency layer ships besides the SDK (requirements-lambda.txt): Powertools with its tracer extra.
LAYER_PACKAGES = ("aws_lambda_powertools", "aws_xray_sdk", "wrapt", "jmespath", "typing_extensions.py")
HANDLERS = {"Submit": c.SUBMIT_HANDLER, "Webhook": c.WEBHOOK_HANDLER, "Reconcile": c.RECONCILE_HANDLER}
MAX_ASSET_ZIP_BYTES = 5 * 1024 * 1024


def _link_packages(names: tuple[str, ...], target: Path) -> None:
    target.mkdir(parents=True)
    for name in names:
        source = SITE_PACKAGES / name
        if source.exists():
            (target / name).symlink_to(source)


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Synthesize into a fresh cloud assembly; return it and the template."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = make_app({"aws:cdk:bundling-stacks": ["**"]}, outdir=str(outdir))  # bundle, as `cdk synth` does
    app, stack = cdk_app.build_app(app, nag=False)
    # The layer's pip install is test_layers.py's subject (and needs the package index): not here
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layers, "build_layer", lambda requirements, output, python: (output / "python").mkdir())
        app.synth()
    return outdir, dict(Template.from_stack(stack).to_json())


@pytest.fixture(scope="module")
def functions_asset(synthesized: tuple[Path, dict[str, Any]]) -> Path:
    outdir, template = synthesized
    manifest = json.loads(next(outdir.glob("*.assets.json")).read_text())
    code_keys = {
        fn["Properties"]["Code"]["S3Key"]
        for fn in template["Resources"].values()
        if fn["Type"] == "AWS::Lambda::Function" and fn["Properties"].get("Handler") in HANDLERS.values()
    }
    # One asset for all three functions.
    assert len(code_keys) == 1
    (asset_hash,) = [h for h, f in manifest["files"].items() if f"{h}.zip" in code_keys]
    source = manifest["files"][asset_hash]["source"]
    assert source["packaging"] == "zip"
    return outdir / source["path"]


def test_asset_holds_only_the_package_and_its_bytecode_for_the_runtime(functions_asset: Path) -> None:
    files = [p.relative_to(functions_asset) for p in functions_asset.rglob("*") if p.is_file()]
    assert files and all(p.parts[0] == "cutouts" for p in files)
    assert not [p for p in files if "tests" in p.parts]
    sources = {p for p in files if p.suffix == ".py"}
    compiled = {p for p in files if p.suffix == ".pyc"}
    assert sources | compiled == set(files)
    tag = f"cpython-{RUNTIME_PYTHON.replace('.', '')}"
    expected = {p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc" for p in sources}
    # Bytecode for exactly the runtime's Python, one per module, when that Python is installed here
    assert compiled == (expected if find_python(RUNTIME_PYTHON) else set())


def test_every_function_runs_the_python_the_bytecode_is_compiled_for(template_json: dict[str, Any]) -> None:
    # Given the synthesized functions
    runtimes = {
        res["Properties"]["Runtime"]
        for res in template_json["Resources"].values()
        if res["Type"] == "AWS::Lambda::Function" and str(res["Properties"].get("Handler", "")).startswith("cutouts.")
    }
    # Then each runs exactly the Python the package's bytecode is built for (a mismatch would
    # make every .pyc unusable and silently recompile on each cold start)
    assert runtimes == {f"python{RUNTIME_PYTHON}"} == {RUNTIME.name}


def test_find_python_returns_an_interpreter_of_exactly_that_version() -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = find_python(version)
    assert found is not None
    reported = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert reported.stdout.strip() == str(sys.version_info[:2])
    assert find_python("2.99") is None


def test_shipped_bytecode_is_loaded_without_reading_the_source(tmp_path: Path) -> None:
    # Given the package built for this interpreter (as synthesis builds it for the runtime's)
    build_package(Path(c.__file__).parent.parent, tmp_path / "asset", sys.executable)
    # and a source file changed afterwards, with a timestamp the bytecode does not know
    (tmp_path / "asset" / "cutouts" / "keys.py").write_text("raise RuntimeError('compiled from source')\n")
    # When a clean interpreter imports it from a read-only-like place (no bytecode writing)
    asset = str(tmp_path / "asset")
    script = f"import sys; sys.path.insert(0, {asset!r}); import cutouts.keys as k; print(k.job_id_for)"
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # Then the shipped bytecode is what runs: no compile at import, whatever the zip's timestamps
    assert result.returncode == 0, result.stderr[-2000:]
    assert "function job_id_for" in result.stdout


def test_asset_is_small(functions_asset: Path, tmp_path: Path) -> None:
    archive = tmp_path / "asset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(functions_asset.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(functions_asset))
    raw = sum(p.stat().st_size for p in functions_asset.rglob("*") if p.is_file())
    print(f"\nfunctions asset: {raw} bytes unzipped, {archive.stat().st_size} bytes zipped")
    assert archive.stat().st_size < MAX_ASSET_ZIP_BYTES


def _env_for(template: dict[str, Any], handler: str) -> dict[str, str]:
    """The function's environment from the template, tokens replaced by plausible stand-ins."""
    (fn,) = [
        v
        for v in template["Resources"].values()
        if v["Type"] == "AWS::Lambda::Function" and v["Properties"].get("Handler") == handler
    ]
    stand_ins = {
        ENV_NAMES["table_name"]: "cutouts-jobs",
        ENV_NAMES["gateway_key_secret"]: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gateway-AbCdEf",
        ENV_NAMES["signing_secret"]: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signing-AbCdEf",
        ENV_NAMES["callback_base_url"]: "https://abc123.execute-api.eu-west-1.amazonaws.com",
        ENV_NAMES["dlq_url"]: "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
        ENV_NAMES["render_queue_url"]: "https://sqs.eu-west-1.amazonaws.com/123456789012/render",
        ENV_NAMES["render_dlq_url"]: "https://sqs.eu-west-1.amazonaws.com/123456789012/render-dlq",
        ENV_NAMES["queue_url"]: "https://sqs.eu-west-1.amazonaws.com/123456789012/uploads",
    }
    env: dict[str, str] = {}
    for name, value in fn["Properties"]["Environment"]["Variables"].items():
        env[name] = value if isinstance(value, str) else stand_ins[name]
    return env


@pytest.mark.parametrize("name", list(HANDLERS))
def test_handler_imports_with_only_runtime_and_layer(
    name: str, functions_asset: Path, synthesized: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    handler = HANDLERS[name]
    module, _, attribute = handler.rpartition(".")
    if not (functions_asset / Path(*module.split("."))).with_suffix(".py").exists():
        pytest.skip(f"{module} is not written yet")
    # Given a runtime directory and a layer directory holding only what Lambda provides
    runtime, layer = tmp_path / "runtime", tmp_path / "opt-python"
    _link_packages(RUNTIME_PACKAGES, runtime)
    _link_packages(LAYER_PACKAGES, layer)
    # When a clean interpreter (-I: no env, no user site; -S: no site-packages) imports the handler
    # with Lambda's search order: the asset (/var/task), the layer (/opt/python), the runtime
    script = (
        "import importlib, sys\n"
        f"sys.path[:0] = {[str(functions_asset), str(layer), str(runtime)]!r}\n"
        f"mod = importlib.import_module({module!r})\n"
        f"assert callable(getattr(mod, {attribute!r})), 'no handler'\n"
        "site = [p for p in sys.path if 'site-packages' in p]\n"
        "assert not site, site\n"
        "print('ok')\n"
    )
    env = {
        **_env_for(synthesized[1], handler),
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PATH": os.environ.get("PATH", ""),
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    # Then it imports: a dependency missing from runtime + layer fails here, not in the cloud
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
