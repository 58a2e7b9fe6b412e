"""`python -m local run` writes the run's completion events to OUTPUT/events.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ENVELOPE = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]


def test_local_run_writes_one_event_per_job_end_to_events_jsonl(tmp_path):
    # Given a folder with a good image and an empty file
    source = tmp_path / "in"
    source.mkdir()
    (source / "red apple.jpg").write_bytes((SAMPLES / "images" / "red apple.jpg").read_bytes())
    (source / "empty.png").write_bytes(b"")
    # When `python -m local run` processes it
    result = subprocess.run(
        [sys.executable, "-m", "local", "run", "--input", str(source), "--output", str(tmp_path / "out")],
        cwd=SAMPLES.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Then events.jsonl holds one event per job end, each in the envelope a target receives
    lines = (tmp_path / "out" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = {e["detail-type"]: e for e in map(json.loads, lines)}
    assert len(lines) == 2 and set(events) == {"Cutout Created", "Cutout Failed"}
    for event in events.values():
        assert list(event) == ENVELOPE and event["source"] == "cutouts" and event["account"]
    created = events["Cutout Created"]["detail"]
    assert created["source"]["key"] == "uploads/red apple.jpg" and created["paid"] is True
    assert created["outputs"] == [{"key": "cutouts/red apple.jpg.png", "profile": None, "output": None}]
    assert (tmp_path / "out" / created["outputs"][0]["key"]).is_file()
    failed = events["Cutout Failed"]["detail"]
    assert failed["failure"]["reason"] == "empty-file" and failed["paid"] is False
    assert failed["failure"]["report_key"] == "failed/empty.png.json"
