"""Context as a deployer passes it: `make synth stage=prod CONTEXT=...` and `python app.py -c key=value`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def synth(*context: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app.py", *context],
        cwd=ROOT,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_synth_and_deploy_pass_the_stage_and_context_through():
    # Given `make synth stage=prod CONTEXT="k=v k2=v2"` (printed, not run: -n; the venv counts as built: -o)
    context = "CONTEXT=alarmEmail=a@b.example dedup=false"

    def planned(target: str) -> str:
        done = subprocess.run(
            ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", target, "stage=prod", context],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    # Then each -c reaches the app, as `cdk synth -c` would
    assert planned("synth").endswith("app.py -c stage=prod -c alarmEmail=a@b.example -c dedup=false")
    assert planned("deploy").endswith("deploy -c stage=prod -c alarmEmail=a@b.example -c dedup=false")


def test_an_unknown_key_on_the_command_line_stops_synth_with_one_line():
    result = synth("-c", "stage=prod", "-c", "unknownKey=1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: Invalid CDK context 'unknownKey': unknown key; the keys this app reads are in "
        "docs/configuration.md (remove it from cdk.json or the -c options, or correct it)"
    ]


def test_a_clashing_input_prefix_names_the_key_the_user_set():
    result = synth("-c", "inputPrefix=cutouts/")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: Invalid CDK context 'inputPrefix':")
