"""The bench's table says what its figures mean: ratios readable, results before any profile,
and the cost page quotes the sample run's own figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench import aws_calls, cost, throughput
from bench.common import Row

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("value", "shown"), [(0.0012, "0.12%"), (1.234, "1.23x"), (63.8, "63.80x"), (None, "-")])
def test_a_ratio_under_one_percent_is_a_percentage_not_0_00x(value, shown):
    # Given a ratio / When shown in the table / Then it reads as what it is
    assert bench_main._ratio(value) == shown


def test_quick_mode_prints_the_results_and_no_profile_table(monkeypatch, tmp_path, capsys):
    # Given a throughput section that would hand back a profile
    row = Row("4 throughput", "local stack", 5.0, "images/s", 6.0, "ceiling", 0.83, ">= 0.6x", True, 1)
    profile = {"top_functions": "PROFILE TABLE", "slowest_stage": "x", "busy_s": {}, "slowest_by_package_s": {}}
    monkeypatch.setattr(throughput, "run", lambda **_: ([row], profile))
    # When the quick bench runs it
    assert bench_main.main(["--quick", "--only", "throughput", "--output", str(tmp_path / "r.json")]) == 0
    # Then the results are printed and the profile table is not (it is kept in the JSON)
    out = capsys.readouterr().out
    assert "Cutouts benchmark" in out and "PROFILE TABLE" not in out and "Profile of" not in out
    assert json.loads((tmp_path / "r.json").read_text())["throughput_profile_top_functions"] == "PROFILE TABLE"


def test_the_cost_page_and_the_bench_give_the_reconciler_the_same_monthly_cost():
    # Given the bench's price of the reconciler (from its idle pass's documented calls, not a timing)
    month = cost.reconcile_per_month()
    doc = (ROOT / "docs" / "cost.md").read_text()
    # When the cost page states it
    stated = re.search(r"The reconciler runs every minute whatever the volume: about \$(\d+\.\d\d) a month", doc)
    # Then it is the same figure, to the cent
    assert stated and float(stated.group(1)) == round(month, 2)


def test_the_reconcilers_monthly_cost_follows_its_calls(monkeypatch):
    # Given the reconciler's idle pass / When it made twice the calls / Then it would cost more
    before = cost.reconcile_per_month()
    doubled = {k: 2 * v for k, v in aws_calls.RECONCILE_IDLE_PASS.items()}
    monkeypatch.setattr(aws_calls, "RECONCILE_IDLE_PASS", doubled)
    assert cost.reconcile_per_month() > before
