"""Each CLI command against the local stack: moto, the gateway emulator and the three handlers."""

from __future__ import annotations

import io
import json
import time

import pytest
from cli_kit import image, notifications, wait_for
from PIL import Image

from cutouts.keys import job_id_for
from cutouts_cli.s3_events import head_source, known_job, notification_body
from local.gateway_emulator import FaultConfig
from local.pipeline import LocalOptions, LocalPipeline

pytestmark = pytest.mark.e2e

APPLE = "red apple.jpg"
FAST = FaultConfig(processing_delay=0.05)


def outputs(pipeline) -> set[str]:
    return pipeline.list_keys(pipeline.options.output_prefix)


def reports(pipeline) -> set[str]:
    return pipeline.list_keys(pipeline.options.failure_prefix)


def test_backfill_enqueues_existing_images_once_and_is_safe_to_rerun(cli_for):
    with LocalPipeline(LocalOptions(faults=FAST)) as pipeline:
        cli = cli_for(pipeline)
        # Given one image processed normally, then two more put in while notifications were off
        pipeline.upload("done.png", image("beach ball.png"))
        wait_for(lambda: outputs(pipeline) == {"cutouts/done.png.png"}, what="the first cutout")
        notifications(pipeline, enabled=False)
        pipeline.upload("old/apple.jpg", image(APPLE))
        pipeline.upload("old/cactus.png", image("green cactus.png"))
        notifications(pipeline, enabled=True)

        # When backfill runs with --dry-run
        plan = cli("backfill", "--dry-run")["plan"]
        # Then it counts the two without a cutout, prices them, and enqueues nothing
        assert plan["to_enqueue"] == 2 and plan["listed"] == 3
        assert plan["skipped"] == {"has a cutout of its current version": 1}
        assert plan["estimated_cost_usd"] == 0.04  # 2 x $0.018, rounded to cents
        time.sleep(0.5)
        assert pipeline.emulator.stats()["accepted"] == 1

        # When it runs for real, and is run again at once (as after an interruption)
        first = cli("backfill", "--yes")
        second = cli("backfill", "--yes")
        # Then both images get their cutout and the gateway is paid once per image
        assert first["result"]["enqueued"] == 2
        assert second["plan"]["to_enqueue"] + sum(second["plan"]["skipped"].values()) == 3
        wait_for(lambda: len(outputs(pipeline)) == 3, what="the backfilled cutouts")
        time.sleep(1.0)  # let any duplicate message be handled
        assert pipeline.emulator.stats()["accepted"] == 3
        # And a third run finds nothing to do
        assert cli("backfill", "--dry-run")["plan"]["to_enqueue"] == 0
        # And --prefix narrows it
        assert cli("backfill", "--dry-run", "--prefix", "old/")["plan"]["listed"] == 2


def test_status_then_retry_after_a_topped_up_balance(cli_for):
    faults = FaultConfig(processing_delay=0.05, insufficient_balance=True)
    with LocalPipeline(LocalOptions(faults=faults)) as pipeline:
        cli = cli_for(pipeline)
        # Given two uploads refused with 402 (insufficient balance)
        keys = [pipeline.upload("a/apple.jpg", image(APPLE)), pipeline.upload("b/ball.png", image("beach ball.png"))]
        wait_for(lambda: len(reports(pipeline)) == 2, what="two failure reports")

        # When status runs
        status = cli("status")
        # Then it counts them by state and groups them by reason with what to do
        assert status["counts"]["FAILED"] == 2 and status["open_jobs"] == 0
        [group] = status["failures"]
        assert group["reason"] == "gateway-insufficient-balance" and group["count"] == 2
        assert "top it up" in group["advice"] and sorted(group["examples"]) == sorted(keys)
        assert status["dlq_depth"] == 0 and status["oldest_open"] is None

        # When the balance is topped up and a dry run, then a filtered retry, runs
        pipeline.emulator.faults.insufficient_balance = False
        dry = cli("retry", "--reason", "gateway-insufficient-balance", "--dry-run")
        assert len(dry["retried"]) == 2, json.dumps(dry)
        assert pipeline.emulator.stats()["accepted"] == 0
        assert cli("retry", "--reason", "model-failed")["retried"] == []
        result = cli("retry", "--reason", "gateway-insufficient-balance", "--prefix", "a/")
        # Then only the matching job is retried; it gets its cutout and its report goes
        assert [r["key"] for r in result["retried"]] == ["uploads/a/apple.jpg"]
        wait_for(lambda: outputs(pipeline) == {"cutouts/a/apple.jpg.png"}, what="the retried cutout")
        wait_for(lambda: reports(pipeline) == {"failed/b/ball.png.json"}, what="the stale report to go")
        # And retrying the rest works too, without paying twice for the first
        assert len(cli("retry")["retried"]) == 1
        wait_for(lambda: len(outputs(pipeline)) == 2, what="both cutouts")
        assert pipeline.emulator.stats()["accepted"] == 2
        assert cli("status")["counts"]["COMPLETED"] == 2


def test_retry_never_touches_a_job_in_flight_and_status_shows_it(cli_for):
    from cutouts import runtime
    from cutouts_cli.retry import retry_failed
    from cutouts_cli.target import Target, make_clients

    faults = FaultConfig(processing_delay=30)
    with LocalPipeline(LocalOptions(faults=faults, stale_after_seconds=60)) as pipeline:
        cli = cli_for(pipeline)
        # Given an upload the gateway is still working on
        key = pipeline.upload("slow.jpg", image(APPLE))
        store = runtime.services().store
        source = head_source(pipeline.s3(), pipeline.resources.bucket, key)

        def job():
            return known_job(store, source)[1]

        wait_for(lambda: job() is not None and job().status == "SUBMITTED", what="the job to be submitted")
        # When status runs
        status = cli("status")
        # Then the job is the oldest open one
        assert status["counts"]["SUBMITTED"] == 1 and status["oldest_open"]["key"] == key
        # When a retry acts on a stale view that still says FAILED
        res = pipeline.resources
        target = Target(
            res.bucket, res.queue_url, res.dlq_url, res.table_name, endpoint_url=res.endpoint_url, region="us-east-1"
        )
        stale = job()
        stale.status = "FAILED"
        result = retry_failed(make_clients(target), target, [stale], time.time())
        # Then the conditional reopen refuses: nothing is enqueued, the job stays SUBMITTED
        assert result.retried == [] and result.skipped == {"no longer FAILED": 1}
        assert job().status == "SUBMITTED"
        assert pipeline.emulator.stats()["accepted"] == 1


def test_retry_include_dlq_redrives_a_dead_lettered_upload(cli_for):
    from cutouts import runtime
    from cutouts.notifications import source_from_s3_record
    from cutouts.outcomes import fail_new_job

    with LocalPipeline(LocalOptions(faults=FAST, reconcile_every=3600)) as pipeline:
        cli = cli_for(pipeline)
        res = pipeline.resources
        # Given an upload whose message dead-lettered and that the reconciler reported as failed
        notifications(pipeline, enabled=False)
        key = pipeline.upload("crashed.jpg", image(APPLE))
        notifications(pipeline, enabled=True)
        body = notification_body(head_source(pipeline.s3(), res.bucket, key), "us-east-1", None)
        sqs = res.client("sqs")
        sqs.send_message(QueueUrl=res.dlq_url, MessageBody=body)
        services = runtime.services()
        source = source_from_s3_record(json.loads(body)["Records"][0])
        assert fail_new_job(source.new_job(), services, time.time(), reason="dead-lettered", message="crashed")
        status = cli("status")
        assert status["dlq_depth"] == 1 and status["failures"][0]["reason"] == "dead-lettered"

        # When retry --include-dlq runs (with a prefix that matches no failed job)
        result = cli("retry", "--include-dlq", "--prefix", "nothing/")
        # Then the message is moved back, its job reopened, and the image gets its cutout
        assert result["dlq_moved"] == 1 and result["dlq_reopened"] == 1 and result["retried"] == []
        wait_for(lambda: outputs(pipeline) == {"cutouts/crashed.jpg.png"}, what="the redriven cutout")
        wait_for(lambda: reports(pipeline) == set(), what="the report to go")
        assert cli("status")["dlq_depth"] == 0
        assert services.store.get(job_id_for(res.bucket, key, source.version)).status == "COMPLETED"


def test_same_image_three_names_and_a_reupload_cost_one_gateway_call(cli_for):
    """Identical bytes are paid for once, whatever their names."""
    with LocalPipeline(LocalOptions(faults=FAST)) as pipeline:
        cli = cli_for(pipeline)
        bucket, s3 = pipeline.resources.bucket, pipeline.s3()
        # Given the apple uploaded under one name and cut out
        first = pipeline.upload("same/one.jpg", image(APPLE))
        wait_for(lambda: "cutouts/same/one.jpg.png" in outputs(pipeline), what="the first cutout")
        # When the same bytes arrive under two more names, then again under the first name
        pipeline.upload("same/two.jpg", image(APPLE))
        pipeline.upload("elsewhere/three.jpg", image(APPLE))
        wait_for(lambda: len(outputs(pipeline)) == 3, what="three cutouts")
        again = s3.put_object(Bucket=bucket, Key=first, Body=image(APPLE))["VersionId"]
        # moto's notification leaves out versionId (to moto the re-upload is the same ETag, a free
        # duplicate); S3 names the new version, so send the event S3 itself would send as well.
        real_event = notification_body(head_source(s3, bucket, first), "us-east-1", None)
        pipeline.resources.client("sqs").send_message(QueueUrl=pipeline.resources.queue_url, MessageBody=real_event)

        def reupload_done() -> bool:
            meta = s3.head_object(Bucket=bucket, Key="cutouts/same/one.jpg.png")["Metadata"]
            return meta.get("source-version") == again

        wait_for(reupload_done, what="the re-upload's cutout")
        # Then the gateway accepted exactly one request
        assert pipeline.emulator.stats()["accepted"] == 1
        # And every cutout is the apple's: subject opaque, background transparent, its own metadata
        for name in ("same/one.jpg", "same/two.jpg", "elsewhere/three.jpg"):
            obj = s3.get_object(Bucket=bucket, Key=f"cutouts/{name}.png")
            assert obj["ContentType"] == "image/png"
            assert obj["Metadata"]["source-key"] == f"uploads/{name}"
            cut = Image.open(io.BytesIO(obj["Body"].read()))
            assert cut.mode == "RGBA" and cut.size == (384, 384)
            assert cut.getpixel((190, 240))[3] >= 250 and cut.getpixel((260, 84))[3] >= 250
            assert cut.getpixel((30, 30))[3] <= 5 and cut.getpixel((350, 350))[3] <= 5
        # And status shows four completed jobs, three of them from cache
        assert cli("status")["counts"]["COMPLETED"] == 4
