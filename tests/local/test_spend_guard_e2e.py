"""The spend guard on the whole local stack: the budget holds however the uploads arrive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_a_run_with_a_budget_of_five_images_cuts_out_five_and_parks_fifteen(tmp_path):
    # Given twenty different images and a day's budget of five images
    from PIL import Image

    source = tmp_path / "in"
    source.mkdir()
    for i in range(20):
        Image.new("RGB", (40, 30), (10 * i, 255 - 10 * i, 128)).save(source / f"{i:02}.png")
    # When `python -m local run` uploads them all at once, as a user would run it
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local",
            "run",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out"),
            "--daily-budget-usd",
            "0.09",
            "--price-per-image-usd",
            "0.018",
            "--timeout",
            "90",
        ],
        cwd=SAMPLES.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Then exactly five were paid for and cut out, fifteen are parked (accounted for), and it exits 0
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "20 inputs: 5 cutouts, 0 failed, 15 parked, 0 unaccounted"
    assert len(list((tmp_path / "out" / "cutouts").glob("*.png"))) == 5
    assert not (tmp_path / "out" / "failed").exists()
