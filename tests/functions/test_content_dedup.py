"""Content de-duplication in the submit path: identical bytes cost one gateway call (moto + fake gateway)."""

from __future__ import annotations

import json
import time

import pytest
from functions_kit import cutout_png, image_bytes

from cutouts import constants as c
from cutouts.settings_table import ENV_NAMES

JPEG = image_bytes("JPEG", (40, 30))
OTHER_JPEG = image_bytes("JPEG", (30, 40))


class RecordingMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def count(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def seconds(self, name: str, value: float) -> None:
        return None

    def failure(self, reason: str) -> None:
        self.count(f"failure:{reason}")


@pytest.fixture
def services(cutouts):
    found = cutouts.services()
    found.metrics = RecordingMetrics()
    return found


def submit(cutouts, services, key, body, sequencer="0055AED6DCD90281E5"):
    from cutouts.notifications import source_from_s3_record
    from cutouts.submission import submit_source

    doc = json.loads(cutouts.notification(key, body, sequencer=sequencer))
    return submit_source(source_from_s3_record(doc["Records"][0]), services, time.time())


def finish(cutouts, services, outcome):
    """Play the gateway: complete the request with a cutout and settle the job as the webhook would."""
    from cutouts.completion import settle_job

    png = cutout_png((40, 30))
    cutouts.gateway.complete(outcome.detail, png)
    job = services.store.get(outcome.job_id)
    assert settle_job(job, services.gateway.status(outcome.detail), services, time.time()) == "completed"
    return png


def cutout(cutouts, key):
    obj = cutouts.s3.get_object(Bucket=cutouts.bucket, Key=key)
    return obj["Body"].read(), obj["Metadata"], obj["ContentType"]


def test_identical_bytes_under_a_new_name_reuse_the_cutout_without_a_gateway_call(cutouts, services):
    # Given a.jpg submitted and completed by the gateway
    first = submit(cutouts, services, "uploads/a.jpg", JPEG)
    png = finish(cutouts, services, first)
    # When the same bytes arrive as b.jpg
    second = submit(cutouts, services, "uploads/b.jpg", JPEG)
    # Then b.jpg is completed from cache: no second POST, the same pixels, b's own metadata
    assert second.result == "cached"
    assert len(cutouts.gateway.posts()) == 1
    body, metadata, content_type = cutout(cutouts, "cutouts/b.jpg.png")
    assert body == png and content_type == "image/png"
    assert metadata["job-id"] == second.job_id and metadata["cached-from"] == first.job_id
    assert metadata["source-key"] == "uploads/b.jpg"
    job = services.store.get(second.job_id)
    assert job.status == "COMPLETED" and job.from_cache is True and job.output_key == "cutouts/b.jpg.png"
    assert job.content_hash == services.store.get(first.job_id).content_hash and len(job.content_hash) == 64
    assert services.metrics.counts[c.METRIC_GATEWAY_CALLS_SAVED] == 1


def test_different_bytes_go_to_the_gateway(cutouts, services):
    # Given a.jpg completed
    finish(cutouts, services, submit(cutouts, services, "uploads/a.jpg", JPEG))
    # When other bytes arrive
    outcome = submit(cutouts, services, "uploads/b.jpg", OTHER_JPEG)
    # Then they are submitted
    assert outcome.result == "submitted" and len(cutouts.gateway.posts()) == 2
    assert c.METRIC_GATEWAY_CALLS_SAVED not in services.metrics.counts


def test_a_twin_still_in_flight_makes_the_copy_wait_instead_of_paying(cutouts, services):
    # Given a.jpg submitted but not finished
    first = submit(cutouts, services, "uploads/a.jpg", JPEG)
    # When the same bytes arrive as b.jpg
    outcome = submit(cutouts, services, "uploads/b.jpg", JPEG)
    # Then b.jpg waits for a.jpg's result: one POST for both
    assert outcome.result == "waiting" and len(cutouts.gateway.posts()) == 1
    assert services.store.get(outcome.job_id).status == "WAITING"
    # and when a.jpg's cutout lands, b.jpg gets a copy at once
    png = finish(cutouts, services, first)
    body, metadata, _ = cutout(cutouts, "cutouts/b.jpg.png")
    assert body == png and metadata["cached-from"] == first.job_id
    assert services.store.get(outcome.job_id).status == "COMPLETED"


def test_a_twin_whose_cutout_was_replaced_is_not_reused(cutouts, services):
    # Given a.jpg completed, then its cutout overwritten by something that is not a.jpg's result
    finish(cutouts, services, submit(cutouts, services, "uploads/a.jpg", JPEG))
    cutouts.s3.put_object(Bucket=cutouts.bucket, Key="cutouts/a.jpg.png", Body=b"other", Metadata={"job-id": "x"})
    # When the same bytes arrive as b.jpg
    outcome = submit(cutouts, services, "uploads/b.jpg", JPEG)
    # Then b.jpg goes to the gateway instead of copying a wrong cutout
    assert outcome.result == "submitted" and len(cutouts.gateway.posts()) == 2


def test_a_cache_hit_removes_the_stale_failure_report(cutouts, services):
    # Given a.jpg completed and an old failure report for b.jpg
    finish(cutouts, services, submit(cutouts, services, "uploads/a.jpg", JPEG))
    cutouts.s3.put_object(Bucket=cutouts.bucket, Key="failed/b.jpg.json", Body=b"{}")
    # When b.jpg arrives with a.jpg's bytes
    assert submit(cutouts, services, "uploads/b.jpg", JPEG).result == "cached"
    # Then the report is gone
    assert cutouts.keys("failed/") == []


def test_dedup_turned_off_pays_for_every_upload(cutouts, monkeypatch):
    # Given de-duplication switched off in the settings
    from cutouts import runtime

    monkeypatch.setenv(ENV_NAMES["dedup_enabled"], "false")
    runtime.reset()
    services = cutouts.services()
    finish(cutouts, services, submit(cutouts, services, "uploads/a.jpg", JPEG))
    # When the same bytes arrive as b.jpg
    outcome = submit(cutouts, services, "uploads/b.jpg", JPEG)
    # Then the gateway is called again and no hash is recorded
    assert outcome.result == "submitted" and len(cutouts.gateway.posts()) == 2
    assert services.store.get(outcome.job_id).content_hash is None
