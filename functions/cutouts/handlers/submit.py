"""SQS (S3 notifications) -> submit each new image to the gateway, with partial batch responses."""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cutouts import runtime
from cutouts.notifications import parse_notification
from cutouts.observability import logger, metrics, tracer
from cutouts.submission import RetryLater, submit_source
from cutouts.submit_budget import BACKOFF_CAP_SECONDS, END_MARGIN_SECONDS, may_start_record

runtime.settings()  # fail at cold start on a bad setting, not on the first image
MAX_VISIBILITY_SECONDS = 12 * 3600


class HandBackProcessor(BatchProcessor):
    """A BatchProcessor that starts a record only while the invocation has time to finish it.

    Once one record may not start, neither may any after it: those are handed back unstarted.
    They are listed in batchItemFailures, so SQS keeps them, but they are not failures: no
    exception, no failure log or metric, and never the "entire batch failed" error that would
    fail the invocation and return the records that were handled too.
    """

    def __init__(self) -> None:
        super().__init__(event_type=EventType.SQS)
        self.handed_back: list[dict[str, Any]] = []
        self.may_start: Callable[[], bool] = lambda: True

    def _prepare(self) -> None:
        super()._prepare()
        self.handed_back = []

    def _process_record(self, record: dict[str, Any]) -> Any:
        if self.handed_back or not self.may_start():
            self.handed_back.append(record)
            return ("handed-back", None, record)
        return super()._process_record(record)

    def _clean(self) -> None:
        super()._clean()
        if self.handed_back:
            failures = list(self.batch_response.get("batchItemFailures", []))
            failures += [{"itemIdentifier": record["messageId"]} for record in self.handed_back]
            self.batch_response = {"batchItemFailures": failures}


processor = HandBackProcessor()


def backoff_seconds(receive_count: int, retry_after: float | None, base: int) -> int:
    """Exponential backoff with jitter, never sooner than the gateway's Retry-After."""
    exponential = min(BACKOFF_CAP_SECONDS, base * 2 ** max(0, receive_count - 1))
    delay = max(retry_after or 0, exponential * random.uniform(0.5, 1.0))
    return int(min(MAX_VISIBILITY_SECONDS, max(1, delay)))


@functools.cache
def _queue_url(sqs: Any, arn: str) -> str:
    """Asked once per environment, not on every 429 of a storm."""
    _, _, _, _, account, name = arn.split(":", 5)
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def _within_invocation(services: Any, context: LambdaContext | None) -> Any:
    """The gateway call ends before the invocation must answer (a backstop: records start only
    with time to finish). A POST cut short is in doubt, which the reconciler resolves; a time-out
    would return the whole batch instead."""
    if context is None:
        return services
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - END_MARGIN_SECONDS
    return dataclasses.replace(services, gateway=services.gateway.until(deadline))


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    services = _within_invocation(runtime.services(), lambda_context)
    notification = parse_notification(record.body)
    if notification.problem:
        logger.error(
            "queue message is not an S3 notification; dropped",
            problem=notification.problem,
            message_id=record.message_id,
        )
        return
    receive_count = int(record.attributes.approximate_receive_count or 1)
    final = receive_count >= services.settings.max_receives
    for source in notification.sources:
        logger.thread_safe_append_keys(job_id=source.job_id, source_key=source.key)
        try:
            outcome = submit_source(source, services, time.time(), final_delivery=final)
        except RetryLater as exc:
            delay = backoff_seconds(receive_count, exc.retry_after, services.settings.retry_base_seconds)
            logger.warning(
                "gateway busy; will retry", reason=str(exc), retry_in_seconds=delay, receive_count=receive_count
            )
            services.sqs.change_message_visibility(
                QueueUrl=_queue_url(services.sqs, record.event_source_arn),
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=delay,
            )
            raise
        finally:
            logger.thread_safe_remove_keys(["job_id", "source_key"])
        logger.info(
            "submit",
            result=outcome.result,
            detail=outcome.detail,
            job_id=outcome.job_id,
            request_id=outcome.detail if outcome.result == "submitted" else None,
            source_key=source.key,
        )


def _most_received_first(event: dict[str, Any]) -> dict[str, Any]:
    """Records nearest the dead-letter queue start first, so a hand-back never costs them their last delivery."""
    records = event.get("Records")
    if not isinstance(records, list):
        return event

    def receives(record: Any) -> int:
        try:
            return int(record["attributes"]["ApproximateReceiveCount"])
        except (KeyError, TypeError, ValueError):
            return 1

    return {**event, "Records": sorted(records, key=receives, reverse=True)}


def hand_back_now(sqs: Any, records: list[dict[str, Any]]) -> None:
    """Make handed-back records visible again at once instead of after the visibility time-out.

    Best effort: if this fails they still come back, only later. Either way SQS counts the
    receive (ApproximateReceiveCount), which is why hand-backs must stay rare (submit_budget).
    """
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_queue.setdefault(record["eventSourceARN"], []).append(record)
    for arn, queued in by_queue.items():
        try:
            for start in range(0, len(queued), 10):
                sqs.change_message_visibility_batch(
                    QueueUrl=_queue_url(sqs, arn),
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": 0}
                        for i, r in enumerate(queued[start : start + 10])
                    ],
                )
        except Exception:
            logger.warning("could not return handed-back records at once", exc_info=True, count=len(queued))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = runtime.settings()
    processor.may_start = lambda: may_start_record(
        context.get_remaining_time_in_millis() / 1000, settings.http_timeout_seconds, settings.max_image_bytes
    )
    response = dict(
        process_partial_response(
            event=_most_received_first(event), record_handler=record_handler, processor=processor, context=context
        )
    )
    if processor.handed_back:
        logger.info("handed back records there was no time to start", count=len(processor.handed_back))
        hand_back_now(runtime.sqs(), processor.handed_back)
    return response
