"""A key put back to bytes it held before, on a bucket whose versioning was never enabled.

Without versioning a job is keyed on the ETag, so A -> B -> A names A's job twice. The newest
upload must still win: after the third put, the cutout standing is A's, made by (or for) A's job.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from local.gateway_emulator import FaultConfig
from local.pipeline import LocalOptions, LocalPipeline, Upload

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "images"
A, B = (SAMPLES / "beach ball.png").read_bytes(), (SAMPLES / "green cactus.png").read_bytes()
NAME = "revert/ball.png"
FAST = FaultConfig(processing_delay=0.05)


def _state(pipeline: LocalPipeline, upload: Upload) -> dict[str, object]:
    """What a failure message needs: the newest job's record and the cutout's metadata."""
    job = pipeline.job_store().get(upload.job_id)
    s3, output_key = pipeline.s3(), "cutouts/" + NAME + ".png"
    try:
        cutout = s3.head_object(Bucket=upload.bucket, Key=output_key)["Metadata"]
    except s3.exceptions.ClientError:
        cutout = None
    return {"newest job": job and (job.status, job.reason, job.superseded_by), "cutout": cutout}


def _settled(pipeline: LocalPipeline, upload: Upload) -> bool:
    accounting = pipeline.wait([upload.key], timeout=20, newest={upload.key: upload.job_id}, bucket=upload.bucket)
    return accounting.cutouts == [upload.key]


def test_a_key_put_back_to_earlier_bytes_gets_their_cutout_again():
    with LocalPipeline(LocalOptions(faults=FAST, unversioned_bucket=True)) as pipeline:
        plain = pipeline.resources.unversioned_bucket
        # Given A's cutout, then B's over it
        first = pipeline.put(NAME, A, plain)
        assert _settled(pipeline, first)
        second = pipeline.put(NAME, B, plain)
        assert _settled(pipeline, second), _state(pipeline, second)

        # When the key is put back to A's bytes (the same ETag, so the same job)
        third = pipeline.put(NAME, A, plain)
        assert third.job_id == first.job_id

        # Then A's job is reopened and its cutout stands there again, with no report
        assert _settled(pipeline, third), _state(pipeline, third)
        assert pipeline.list_keys("failed/", plain) == set()


def test_a_key_put_back_to_bytes_whose_first_job_found_them_overwritten_gets_their_cutout():
    # (With A's and B's events in one batch, A's job ends SUPERSEDED before B's event names its
    # successor. Handled concurrently, B's event can name it before A's job has a record: the race
    # the chaos test's reverts catch, which this test cannot order.)
    with LocalPipeline(LocalOptions(faults=FAST, unversioned_bucket=True)) as pipeline:
        plain = pipeline.resources.unversioned_bucket
        # Given A's event handled only once B had replaced A (A's job sees other bytes: superseded)
        pipeline.poller.disable()
        time.sleep(1.5)  # a long poll already under way ends
        first = pipeline.put(NAME, A, plain)
        second = pipeline.put(NAME, B, plain)
        pipeline.poller.enable()
        assert _settled(pipeline, second), _state(pipeline, second)

        # When the key is put back to A's bytes
        third = pipeline.put(NAME, A, plain)
        assert third.job_id == first.job_id

        # Then A's cutout stands there, made for A's job
        assert _settled(pipeline, third), _state(pipeline, third)


def test_a_late_event_of_the_first_upload_does_not_end_the_reverted_keys_job():
    with LocalPipeline(LocalOptions(faults=FAST, unversioned_bucket=True)) as pipeline:
        plain, sqs = pipeline.resources.unversioned_bucket, pipeline.resources.client("sqs")
        queue = pipeline.resources.queue_url
        # Given A -> B -> A, with the first A's event held back (SQS does not keep order, and a
        # message handed back by a busy gateway comes again later)
        pipeline.poller.disable()
        time.sleep(1.5)  # a long poll already under way ends
        first = pipeline.put(NAME, A, plain)
        held = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
        assert len(held) == 1
        pipeline.put(NAME, B, plain)
        third = pipeline.put(NAME, A, plain)
        assert third.job_id == first.job_id
        pipeline.poller.enable()
        deadline = time.monotonic() + 20
        while (job := pipeline.job_store().get(third.job_id)) is None or job.status != "SUBMITTED":
            assert time.monotonic() < deadline, _state(pipeline, third)
            time.sleep(0.05)

        # When the first A's event arrives now, while A's job (the newest) is in flight
        sqs.send_message(QueueUrl=queue, MessageBody=held[0]["Body"])
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=held[0]["ReceiptHandle"])

        # Then A's job still ends with A's cutout
        assert _settled(pipeline, third), _state(pipeline, third)
