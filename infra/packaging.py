"""The functions' asset, built without Docker: the package, with bytecode for the Lambda runtime.

Lambda's /var/task is read-only, so a package shipped as source is compiled again on every cold
start (7-17 ms of a handler's import, measured by ``make bench``). Compiling it at
synthesis needs the runtime's own Python minor version (bytecode is version-specific); where that
interpreter is not installed, the asset is the plain source and still correct, only slower to load.
The pycs are "unchecked-hash": used as they are, whatever timestamps the zip gives the sources.
Plain functions, no CDK, so the benchmark builds the same package (infra.functions wires it in).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

RUNTIME_PYTHON = "3.13"  # the minor version of infra.functions.RUNTIME
# What the asset must not carry: tests, caches (bytecode is rebuilt for the runtime), tool droppings.
ASSET_EXCLUDES = [
    "tests",
    "**/tests",
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/*.egg-info",
    "**/.DS_Store",
]
_IGNORE = shutil.ignore_patterns(*{pattern.rsplit("/", 1)[-1] for pattern in ASSET_EXCLUDES})


def find_python(version: str = RUNTIME_PYTHON) -> str | None:
    """An interpreter of exactly this minor version: on PATH, or installed by pyenv; else None."""
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")))
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if found.returncode == 0 and found.stdout.strip() == version:
            return candidate
    return None


def build_package(source: Path, output: Path, python: str | None) -> None:
    """Copy the package into ``output`` and, given an interpreter, compile it there."""
    shutil.copytree(source, output, ignore=_IGNORE, dirs_exist_ok=True)
    if python:
        subprocess.run(
            [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(output)],
            check=True,
            timeout=300,
        )
