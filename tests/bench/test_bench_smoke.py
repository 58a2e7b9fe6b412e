"""The benchmark's pieces run end to end with one repetition each. No timing is asserted."""

from __future__ import annotations

import pytest

from bench import coldstart, cost, memory, perimage, throughput
from bench.__main__ import print_table

pytestmark = pytest.mark.e2e


def test_every_section_produces_rows_with_figures_and_targets(monkeypatch, capsys):
    # Given the smallest settings of every section
    monkeypatch.setattr(memory, "SIZES_MB", (1, 2))
    # When each runs once
    rows = coldstart.run(n=1)
    found, measured = perimage.run(n=1, warmup=1)
    rows += found
    rows += memory.run(n=1)
    result = throughput.run_once(images=3, timeout=60)
    ceiling = throughput.stand_in_ceiling(images=3)
    found, breakdown = cost.run(measured, cold_import_ms=rows[0].figure)
    rows += found
    print_table(rows)
    # Then every row has a figure, a target and a verdict, and the pipeline finished its images
    assert all(row.figure == row.figure and row.target and row.met in (True, False) for row in rows)
    assert {row.section for row in rows} == {"1 cold start", "2 per-image work", "3 memory", "5 dollars"}
    assert measured["submit_calls"] and measured["webhook_calls"]
    # the bench's own count of calls per image is the documented one (bench/aws_calls.py)
    calls_row = next(row for row in rows if row.name.startswith("AWS calls per image"))
    assert calls_row.met is True, calls_row.details["differs"]
    assert result["cutouts"] == 3
    # the stand-in's ceiling replays every request an image needs, and every replayed update held
    assert ceiling["images"] == 3 and ceiling["rate"] > 0
    assert not any(name.startswith("error") for name in ceiling["requests_per_image"])
    assert "Lambda requests" in breakdown
    assert "Cutouts benchmark" in capsys.readouterr().out
