"""SQS (render queue) -> render a job's outputs from its master, or prepare an upload; partial batch responses.

A request that fails (the job still finishing, the key's lease busy, an AWS error, a crash)
goes back to the queue and is tried again, and after ``maxReceives`` deliveries lands in the
render dead-letter queue (alarmed). No path here calls the gateway: a retry is never paid twice.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from cutouts import runtime
from cutouts.derived_outputs import prepare_upload, render_job
from cutouts.observability import logger, metrics, tracer
from cutouts.render_requests import PREPARE, BadRequest, parse_request

runtime.settings()  # fail at cold start on a bad setting
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    try:
        request = parse_request(record.body)
    except BadRequest as exc:
        logger.error("render queue message dropped", problem=str(exc), message_id=record.message_id)
        return
    services = runtime.services(signing=False)  # renders and prepares: never signs a callback
    logger.thread_safe_append_keys(job_id=request.job_id, source_key=request.key)
    try:
        if request.kind == PREPARE:
            prepared = prepare_upload(request, services, time.time())
            logger.info("prepare", action=prepared.action, detail=prepared.detail)
        else:
            rendered = render_job(request, services, time.time())
            logger.info(
                "render",
                written=len(rendered.written),
                failed=list(rendered.failed),
                skipped=rendered.skipped or None,
                rerender=request.rerender,
            )
    finally:
        logger.thread_safe_remove_keys(["job_id", "source_key"])


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
