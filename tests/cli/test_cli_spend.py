"""The spend guard through the operations CLI, against the local stack."""

from __future__ import annotations

import pytest
from cli_kit import image, notifications, wait_for

from local.gateway_emulator import FaultConfig
from local.pipeline import LocalOptions, LocalPipeline

pytestmark = pytest.mark.e2e


def distinct_png() -> bytes:
    """An image no other upload shares (identical bytes would be copied from cache, not paid)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (48, 32), (17, 99, 201)).save(out, "PNG")
    return out.getvalue()


FAST = FaultConfig(processing_delay=0.05)
IMAGES = ("red apple.jpg", "beach ball.png", "green cactus.png", "café mug.png")


def test_status_shows_the_spend_and_parked_jobs_backfill_refuses_past_the_budget_and_resume_lists_them(cli_for):
    # Given a day's budget of two images and four different uploads
    with LocalPipeline(LocalOptions(faults=FAST, daily_budget_usd=0.036)) as pipeline:
        cli = cli_for(pipeline)
        for name in IMAGES:
            pipeline.upload(f"a/{name}", image(name))
        store = pipeline.job_store()
        wait_for(lambda: store.count_by_status("PARKED") == 2, what="two parked jobs")
        wait_for(lambda: store.recorded_limits() is not None, what="the reconciler to record the budgets")

        # When status runs
        spend = cli("status")["spend"]
        # Then it shows today's spend against the budget, no room left, and the two parked
        assert spend["spent_today_usd"] == pytest.approx(0.036)
        assert spend["daily_budget_usd"] == pytest.approx(0.036)
        assert spend["images_left"] == 0 and spend["parked"] == 2 and spend["budgets_recorded"] is True

        # When backfill would enqueue an image the budget has no room for
        notifications(pipeline, enabled=False)
        pipeline.upload("b/extra.png", distinct_png())
        notifications(pipeline, enabled=True)
        refused = cli("backfill", "--prefix", "b/", "--yes", expect=1)
        # Then it refuses, with the figures, and enqueues nothing
        assert refused["result"] is None
        assert "room for 0" in refused["refused"] and "--over-budget" in refused["refused"]
        # And --over-budget enqueues it anyway: it is parked, not paid
        accepted_before = pipeline.emulator.stats()["accepted"]
        assert cli("backfill", "--prefix", "b/", "--yes", "--over-budget")["result"]["enqueued"] == 1
        wait_for(lambda: store.count_by_status("PARKED") == 3, what="the backfilled image parked")
        assert pipeline.emulator.stats()["accepted"] == accepted_before == 2

        # When resume runs as a dry run, then for real on one prefix
        dry = cli("resume", "--dry-run")
        assert len(dry["resumed"]) == 3 and store.count_by_status("PARKED") == 3
        done = cli("resume", "--prefix", "b/")
        # Then only that prefix's job is sent on; the budget still holds, so it is parked again, not paid
        assert [r["key"] for r in done["resumed"]] == ["uploads/b/extra.png"]
        wait_for(lambda: store.count_by_status("PARKED") == 3, what="the resumed job parked again")
        assert pipeline.emulator.stats()["accepted"] == 2
