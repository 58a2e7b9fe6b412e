"""The tests synthesize into temporary folders, never into the project's cdk.out/."""

from __future__ import annotations

from pathlib import Path

from outdir_kit import PROJECT_CDK_OUT, cdk_out_snapshot
from synth_kit import make_app

import app as cdk_app


def test_a_test_app_without_outdir_writes_outside_the_project() -> None:
    # Given the Makefile's environment, which points CDK_OUTDIR at the project's cdk.out
    # (the session guard has moved it to a temporary folder; a test that forgets it is caught here)
    before = cdk_out_snapshot()
    # When a test builds and synthesizes the app as the infra tests do
    app, _ = cdk_app.build_app(make_app(), nag=False)
    assembly = app.synth()
    # Then the template lands outside the project, and the project's cdk.out is untouched
    written = Path(assembly.directory).resolve()
    assert not written.is_relative_to(PROJECT_CDK_OUT.parent)
    assert any(written.glob("*.template.json"))
    assert cdk_out_snapshot() == before
