"""A submit batch never outlasts its function: records start only with time to finish, the rest go back."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from functions_kit import image_bytes, unique_image

from cutouts import constants as c
from cutouts.submit_budget import (
    BATCH_SIZE,
    END_MARGIN_SECONDS,
    function_timeout_seconds,
    may_start_record,
    record_seconds,
)

MiB = 1024 * 1024


@pytest.fixture
def submit(cutouts: Any) -> Any:
    from cutouts.handlers import submit as module

    return module


def _context_spending(lambda_context: Any, cutouts: Any, start_ms: int, per_post_ms: int) -> Any:
    """A context whose remaining time drops by ``per_post_ms`` for each POST the gateway received."""
    context = replace(lambda_context)
    context.get_remaining_time_in_millis = lambda: start_ms - per_post_ms * len(cutouts.gateway.posts())  # type: ignore[method-assign]
    return context


def _emitted_metric_names(out: str) -> set[str]:
    names: set[str] = set()
    for line in out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        for directive in doc.get("_aws", {}).get("CloudWatchMetrics", []):
            names |= {m["Name"] for m in directive["Metrics"]}
    return names


def test_a_batch_near_the_time_limit_hands_back_the_records_it_did_not_start_and_counts_none_as_failed(
    submit: Any, cutouts: Any, lambda_context: Any, capsys: Any
) -> None:
    # Given four uploads in one batch, and an invocation whose time runs short after two POSTs
    keys = [f"uploads/batch-{i}.jpg" for i in range(4)]
    event = cutouts.sqs_event([cutouts.notification(k, unique_image(k)) for k in keys])
    settings = cutouts.services().settings
    one_record_ms = int(
        (record_seconds(settings.http_timeout_seconds, settings.max_image_bytes) + END_MARGIN_SECONDS) * 1000
    )
    context = _context_spending(lambda_context, cutouts, start_ms=3 * one_record_ms - 1, per_post_ms=one_record_ms)
    capsys.readouterr()
    # When the batch is handled
    result = submit.handler(event, context)
    # Then the first two were submitted, and the two it had no time to start were handed back
    assert len(cutouts.gateway.posts()) == 2
    ids = [r["messageId"] for r in event["Records"]]
    assert result == {"batchItemFailures": [{"itemIdentifier": ids[2]}, {"itemIdentifier": ids[3]}]}
    # untouched: no job record, no failure report
    assert not any(k in json.dumps(cutouts.all_items()) for k in keys[2:])
    assert cutouts.keys("failed/") == []
    # and none counted as failed: no failure metric, the handled records' own metrics only
    names = _emitted_metric_names(capsys.readouterr().out)
    assert c.METRIC_SUBMITTED in names and c.METRIC_FAILED not in names
    # And the handed-back records are visible again at once, not after the visibility time-out
    again = cutouts.sqs.receive_message(QueueUrl=cutouts.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert sorted(m["MessageId"] for m in again.get("Messages", [])) == sorted(ids[2:])


def test_a_failure_beside_handed_back_records_does_not_fail_the_invocation(
    submit: Any, cutouts: Any, lambda_context: Any
) -> None:
    # Given a batch whose first record fails (S3 refuses the read) and whose others find no time
    event = cutouts.sqs_event([cutouts.notification(f"uploads/f-{i}.jpg", image_bytes("JPEG")) for i in range(3)])
    calls = {"n": 0}

    def remaining() -> int:
        calls["n"] += 1
        return 60_000 if calls["n"] <= 2 else 1_000  # the first record's start and its deadline

    context = replace(lambda_context)
    context.get_remaining_time_in_millis = remaining  # type: ignore[method-assign]
    from cutouts import runtime

    real = runtime.services

    def failing_services() -> Any:
        return replace(real(), s3=_Raising(real().s3))

    runtime_services, runtime.services = runtime.services, failing_services
    try:
        # When the batch is handled
        result = submit.handler(event, context)
    finally:
        runtime.services = runtime_services
    # Then all three come back, and the invocation itself did not fail (no BatchProcessingError)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        r["messageId"] for r in event["Records"]
    )


class _Raising:
    """An S3 client whose GetObject fails like a throttled S3 would."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get_object(self, **_: Any) -> Any:
        raise RuntimeError("SlowDown")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_records_nearest_the_dead_letter_queue_start_first(submit: Any, cutouts: Any, lambda_context: Any) -> None:
    # Given a batch whose last record is on its fifth delivery, and time for one record only
    event = cutouts.sqs_event([cutouts.notification(f"uploads/o-{i}.jpg", unique_image(f"o-{i}")) for i in range(3)])
    event["Records"][2]["attributes"]["ApproximateReceiveCount"] = "5"
    settings = cutouts.services().settings
    one = int((record_seconds(settings.http_timeout_seconds, settings.max_image_bytes) + END_MARGIN_SECONDS) * 1000)
    context = _context_spending(lambda_context, cutouts, start_ms=one + 500, per_post_ms=one)
    # When the batch is handled
    result = submit.handler(event, context)
    # Then the much-received record was the one started
    handed_back = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert handed_back == {event["Records"][0]["messageId"], event["Records"][1]["messageId"]}
    assert len(cutouts.gateway.posts()) == 1


@pytest.mark.parametrize(("http", "max_bytes"), [(10.0, 25 * MiB), (20.0, 25 * MiB), (1.0, 1024), (20.0, 512 * MiB)])
def test_the_time_out_fits_a_whole_batch_of_the_longest_records(http: float, max_bytes: int) -> None:
    # Given any allowed gateway time-out and image cap
    timeout = function_timeout_seconds(http, max_bytes)
    # Then a full batch of the longest records ends before the time-out, with room to answer
    assert BATCH_SIZE * record_seconds(http, max_bytes) + END_MARGIN_SECONDS <= timeout <= 900
    # and each of them may start with what the previous ones leave
    remaining = float(timeout)
    for _ in range(BATCH_SIZE):
        assert may_start_record(remaining, http, max_bytes)
        remaining -= record_seconds(http, max_bytes)
    assert remaining >= 0


def test_a_record_covers_the_gateway_post_and_reading_the_largest_image() -> None:
    # Given the defaults: a 10 s read time-out and 25 MiB images
    seconds = record_seconds(10.0, 25 * MiB)
    # Then a record's budget holds the POST's connect and read time-outs and the full read
    assert seconds >= 3 + 10 + 25 * MiB / (10 * MiB)
    assert function_timeout_seconds(10.0, 25 * MiB) == 100
