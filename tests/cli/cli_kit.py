"""Helpers for driving the operations CLI against the local stack (LocalPipeline)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cutouts_cli  # noqa: F401  (puts functions/ on sys.path, as for the Lambda asset)
from cutouts_cli.__main__ import main

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def target_args(pipeline: Any) -> list[str]:
    res = pipeline.resources
    return [
        "--endpoint-url",
        res.endpoint_url,
        "--bucket",
        res.bucket,
        "--queue-url",
        res.queue_url,
        "--dlq-url",
        res.dlq_url,
        "--table",
        res.table_name,
        "--region",
        "us-east-1",
    ]


class Cli:
    """Run ``python -m cutouts_cli`` in-process with --json and parse what it printed."""

    def __init__(self, pipeline: Any, capsys: Any) -> None:
        self.pipeline, self.capsys = pipeline, capsys

    def __call__(self, *argv: str, expect: int = 0) -> Any:
        self.capsys.readouterr()
        code = main([*target_args(self.pipeline), "--json", *argv])
        out = self.capsys.readouterr().out
        assert code == expect, out
        return json.loads(out) if out.strip() else None


def notifications(pipeline: Any, enabled: bool) -> None:
    """Switch the bucket's upload notifications off to create images 'already in the bucket'."""
    s3, res, opts = pipeline.s3(), pipeline.resources, pipeline.options
    config: dict[str, Any] = {}
    if enabled:
        config = {
            "QueueConfigurations": [
                {
                    "QueueArn": res.queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": opts.input_prefix}]}},
                }
            ]
        }
    s3.put_bucket_notification_configuration(Bucket=res.bucket, NotificationConfiguration=config)


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def image(name: str) -> bytes:
    return (SAMPLES / "images" / name).read_bytes()
