"""SQS (S3 notifications) -> submit each new image to the gateway, with partial batch responses."""

from __future__ import annotations

import functools
import random
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cutouts import runtime
from cutouts.notifications import parse_notification
from cutouts.observability import logger, metrics, tracer
from cutouts.submission import RetryLater, submit_source

runtime.settings()  # fail at cold start on a bad setting, not on the first image
processor = BatchProcessor(event_type=EventType.SQS)
MAX_VISIBILITY_SECONDS = 12 * 3600


def backoff_seconds(receive_count: int, retry_after: float | None, base: int) -> int:
    """Exponential backoff with jitter, never sooner than the gateway's Retry-After."""
    exponential = min(900, base * 2 ** max(0, receive_count - 1))
    delay = max(retry_after or 0, exponential * random.uniform(0.5, 1.0))
    return int(min(MAX_VISIBILITY_SECONDS, max(1, delay)))


def _too_little_time(context: LambdaContext, http_timeout_seconds: float) -> bool:
    """Less left than one record may take: the AWS calls, plus a POST's connect and read time-outs."""
    return context.get_remaining_time_in_millis() / 1000 < 2 * http_timeout_seconds + 5


@functools.cache
def _queue_url(sqs: Any, arn: str) -> str:
    """Asked once per environment, not on every 429 of a storm."""
    _, _, _, _, account, name = arn.split(":", 5)
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    services = runtime.services()
    if lambda_context is not None and _too_little_time(lambda_context, services.settings.http_timeout_seconds):
        # A record started now could be cut off mid-POST by the time-out, which fails the whole
        # batch; hand it back untouched instead (nothing was claimed, nothing was paid).
        services.sqs.change_message_visibility(
            QueueUrl=_queue_url(services.sqs, record.event_source_arn),
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=1,
        )
        raise RetryLater("too little time left in this invocation")
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


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
