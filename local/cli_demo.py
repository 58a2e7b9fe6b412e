"""Run each CLI command against the local stack and print what it shows (the README's examples).

    python -m local.cli_demo

Starts the local stack (moto + gateway emulator + the three handlers), puts a backlog of sample
images in the bucket with notifications off, then runs the CLI as a separate process, as an
operator would, against the local endpoint.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "images"


def _notifications(pipeline: Any, enabled: bool) -> None:
    res, opts = pipeline.resources, pipeline.options
    rules = [{"Name": "prefix", "Value": opts.input_prefix}]
    config = (
        {
            "QueueConfigurations": [
                {"QueueArn": res.queue_arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": rules}}}
            ]
        }
        if enabled
        else {}
    )
    pipeline.s3().put_bucket_notification_configuration(Bucket=res.bucket, NotificationConfiguration=config)


def _settle(pipeline: Any, seconds: float = 60.0) -> None:
    """Wait until the upload queue is empty and no job is open."""
    from cutouts import runtime
    from cutouts.job_store import OPEN_STATUSES

    sqs, store = pipeline.resources.client("sqs"), runtime.services().store

    def idle() -> bool:
        attrs = sqs.get_queue_attributes(QueueUrl=pipeline.resources.queue_url, AttributeNames=["All"])["Attributes"]
        queued = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
        return not queued and not any(store.count_by_status(s) for s in OPEN_STATUSES)

    _wait(idle, seconds)
    time.sleep(0.5)


def _mirrored(path: Path) -> bytes:
    """Another picture of the same thing: different bytes, so not a cache hit."""
    import io

    from PIL import Image, ImageOps

    image = Image.open(path)
    buffer = io.BytesIO()
    ImageOps.mirror(image).save(buffer, image.format or "PNG")
    return buffer.getvalue()


def _reports(pipeline: Any) -> int:
    return len(pipeline.list_keys(pipeline.options.failure_prefix))


def _wait(predicate: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.2)


def main() -> int:
    from local.gateway_emulator import FaultConfig
    from local.pipeline import LocalOptions, LocalPipeline

    options = LocalOptions(faults=FaultConfig(processing_delay=0.1), reconcile_every=3600)
    with LocalPipeline(options) as pipeline:
        res, emulator = pipeline.resources, pipeline.emulator
        assert res is not None and emulator is not None
        where = [
            "--endpoint-url", res.endpoint_url, "--bucket", res.bucket, "--queue-url", res.queue_url,
            "--dlq-url", res.dlq_url, "--table", res.table_name, "--region", "us-east-1",
        ]  # fmt: skip
        env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": str(ROOT)}

        def cli(*args: str) -> None:
            print(f"$ python -m cutouts_cli $LOCAL {shlex.join(args)}")
            done = subprocess.run(
                [sys.executable, "-m", "cutouts_cli", *where, *args],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            print(done.stdout.rstrip() or done.stderr.rstrip())
            print()

        print(f"# LOCAL = {shlex.join(where)}\n")
        # A backlog: the samples were in the bucket before the pipeline was deployed.
        _notifications(pipeline, enabled=False)
        backlog = sorted(p for p in SAMPLES.rglob("*") if p.is_file())
        for path in backlog:
            pipeline.upload(path.relative_to(SAMPLES).as_posix(), path.read_bytes())
        pipeline.upload("scans/notes.jpg", b"meeting notes, not an image\n" * 10)
        _notifications(pipeline, enabled=True)

        cli("backfill", "--dry-run")
        cli("backfill", "--yes")
        _settle(pipeline)
        cli("backfill", "--dry-run")

        # The same apple under two more names: copied from cache, no gateway call.
        apple = (SAMPLES / "red apple.jpg").read_bytes()
        pipeline.upload("shop/apple-front.jpg", apple)
        pipeline.upload("shop/apple-copy.jpg", apple)
        _settle(pipeline)

        # The gateway wallet runs dry for two new images; one more is slow; one message dead-letters.
        emulator.faults.insufficient_balance = True
        refused = [
            pipeline.upload("shop/cactus-left.png", _mirrored(SAMPLES / "green cactus.png")),
            pipeline.upload("shop/ball-left.png", _mirrored(SAMPLES / "beach ball.png")),
        ]
        _wait(lambda: _reports(pipeline) >= len(refused) + 1)
        emulator.faults.insufficient_balance = False
        emulator.faults.processing_delay = 120
        pipeline.upload("shop/mug-left.png", _mirrored(SAMPLES / "café mug.png"))
        _wait(lambda: emulator.stats()["accepted"] >= 7)
        time.sleep(0.5)
        emulator.faults.processing_delay = 0.1
        _notifications(pipeline, enabled=False)
        crashed = pipeline.upload("shop/apple-left.jpg", _mirrored(SAMPLES / "red apple.jpg"))
        _notifications(pipeline, enabled=True)
        from cutouts_cli.s3_events import head_source, notification_body

        source = head_source(pipeline.s3(), res.bucket, crashed)
        assert source is not None
        body = notification_body(source, "us-east-1", None)
        res.client("sqs").send_message(QueueUrl=res.dlq_url, MessageBody=body)
        time.sleep(2)

        cli("status")
        cli("retry", "--reason", "gateway-insufficient-balance", "--dry-run")
        cli("retry", "--reason", "gateway-insufficient-balance")
        cli("retry", "--include-dlq", "--reason", "dead-lettered")
        _wait(lambda: emulator.stats()["accepted"] >= 10)
        time.sleep(1.0)
        cli("status", "--json")
        stats = emulator.stats()
        outputs = pipeline.list_keys(options.output_prefix)
        cached = sum(
            "cached-from" in pipeline.s3().head_object(Bucket=res.bucket, Key=key)["Metadata"] for key in outputs
        )
        print(
            f"# gateway: {stats['accepted']} requests accepted; {len(outputs)} cutouts in "
            f"s3://{res.bucket}/{options.output_prefix}, {cached} of them copied from cache"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
