"""The scale model (bench/scale.py): deterministic, conserving, driven by the pipeline's own back-off."""

from __future__ import annotations

import json

import pytest

from bench import scale


@pytest.fixture(scope="module")
def deployed() -> scale.Deployed:
    return scale.deployed()


def small(**gateway: float) -> scale.Scenario:
    """A few thousand images, uploaded at once, against a gateway that misbehaves in every way."""
    faults = {
        "rate_per_s": 4.0,
        "burst": 4.0,
        "rate_5xx": 0.05,
        "rate_error": 0.05,
        "rate_failed": 0.02,
        "rate_lost_callback": 0.05,
        "rate_invocation_crash": 0.02,
        **gateway,
    }
    return scale.Scenario("small", 2_000, 0.0, scale.Gateway(**faults))


def without_series(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "series"}


def test_same_seed_same_result_other_seed_other_result(deployed):
    # Given one scenario and policy
    scenario, policy = small(), scale.Policy("static")
    # When it runs twice with one seed and once with another
    first = scale.simulate(scenario, policy, deployed, seed=7)
    again = scale.simulate(scenario, policy, deployed, seed=7)
    other = scale.simulate(scenario, policy, deployed, seed=8)
    # Then the same seed gives the same figures, another seed different ones
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert without_series(first) != without_series(other)


@pytest.mark.parametrize("policy", [scale.Policy("static"), scale.Policy("aimd", adaptive=True, cap=20)])
def test_every_image_ends_as_a_cutout_a_failure_report_or_dead_lettered(deployed, policy):
    # Given a gateway far below the arrival rate, with 5xx, ERROR, FAILED, lost callbacks and crashes
    scenario = small()
    # When the model runs to the end
    result = scale.simulate(scenario, policy, deployed, seed=3)
    # Then nothing is unfinished and every image has exactly one end
    assert result["unfinished"] == 0
    assert result["cutouts"] + result["failed"] + result["dead_lettered_images"] == scenario.images
    # and every path was taken: retries, failures on the last delivery, dead letters, the reconciler
    counts = result["counts"]
    assert result["throttled_429"] > 0 and counts["errors_5xx"] > 0 and counts["crashes"] > 0
    assert counts["lost_callbacks"] > 0 and counts["resubmissions"] > 0 and counts["duplicates"] > 0
    # and a dead-lettered message whose image had no other end is reported by the reconciler's sweep
    assert result["dead_lettered"] >= result["dead_lettered_images"]


def test_the_model_uses_the_submit_functions_own_backoff(deployed, monkeypatch):
    # Given the deployed back-off and a run that meets many 429s
    module = scale.submit_module()
    scenario, policy = small(rate_5xx=0.0), scale.Policy("static")
    before = scale.simulate(scenario, policy, deployed, seed=5)
    seen: list[tuple[int, float | None, int]] = []

    # When the submit function's back-off is replaced by one that always waits an hour
    def hour(receive_count: int, retry_after: float | None, base: int) -> int:
        seen.append((receive_count, retry_after, base))
        return 3600

    monkeypatch.setattr(module, "backoff_seconds", hour)
    after = scale.simulate(scenario, policy, deployed, seed=5)
    # Then the model called it with the deployed base and the gateway's Retry-After, and its results moved
    assert seen and {base for _, _, base in seen} == {deployed.retry_base_s}
    assert {after for _, after, _ in seen} == {scenario.gateway.retry_after_s}
    assert after["drain_s"] > before["drain_s"] + 3000


def test_deployed_values_are_read_from_the_settings_table_and_the_stack(monkeypatch):
    # Given the settings table and the stack's mapping constants
    from cutouts import settings_table
    from infra import stack

    # When their values change
    monkeypatch.setitem(settings_table.DEFAULTS, "max_receives", 9)
    monkeypatch.setattr(stack, "SUBMIT_BATCH_SIZE", 4)
    d = scale.deployed()
    # Then the model follows them
    assert (d.max_receives, d.batch_size) == (9, 4)


def test_quick_run_writes_the_table_the_json_and_the_plot(tmp_path, capsys):
    # Given the quick variant (1/50 of each scenario, same rates)
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    # When it runs
    assert scale.main(["--quick", "--output", str(out), "--plot", str(png)]) == 0
    # Then the table names every scenario, the JSON holds every run and the plot is a PNG
    printed = capsys.readouterr().out
    assert "burst of 100,000" in printed and ("keep the static" in printed or "adopt the adaptive" in printed)
    results = json.loads(out.read_text())["results"]
    assert {r["scenario"] for r in results} == {s.name for s in scale.scenarios()}
    assert all(r["unfinished"] == 0 for r in results)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
