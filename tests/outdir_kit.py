"""The project's cdk.out/, which no test may write: what it holds, to compare before and after."""

from __future__ import annotations

from pathlib import Path

PROJECT_CDK_OUT = Path(__file__).resolve().parents[1] / "cdk.out"


def cdk_out_snapshot(folder: Path = PROJECT_CDK_OUT) -> dict[str, int]:
    """Every file under the project's cdk.out/ with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
