"""API Gateway HTTP API (payload v2) -> verify the gateway's callback and finish the job.

The API has one route, ``POST /callback/{job_id}``, and API Gateway does the routing, so the
handler reads the event through Powertools' payload-v2 data class rather than a resolver: the
resolver would add ~35 ms of imports to every cold start for a router with one entry.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from cutouts import runtime
from cutouts.callback import CallbackReply, handle_callback
from cutouts.observability import logger, metrics, tracer

runtime.settings()


def _claimed_request_id(body: str | bytes | None) -> str | None:
    """The request id the body claims, for the log lines only (it is checked, not trusted)."""
    try:
        claimed = json.loads(body or "{}").get("request_id")
    except (ValueError, AttributeError):
        return None
    return claimed[:128] if isinstance(claimed, str) else None


def _response(reply: CallbackReply) -> dict[str, Any]:
    return {
        "statusCode": reply.status_code,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": reply.message}),
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=APIGatewayProxyEventV2)
def handler(event: APIGatewayProxyEventV2, context: LambdaContext) -> dict[str, Any]:
    if event.request_context.http.method != "POST":
        return _response(CallbackReply(405, "method not allowed"))
    job_id = (event.path_parameters or {}).get("job_id")
    query = event.query_string_parameters or {}
    body = event.decoded_body
    logger.thread_safe_append_keys(job_id=job_id, request_id=_claimed_request_id(body))
    try:
        reply = handle_callback(
            job_id=job_id,
            attempt=query.get("attempt"),
            token=query.get("token"),
            body=body.encode() if isinstance(body, str) else body,
            services=runtime.services(),
            now=time.time(),
        )
        log = logger.info if reply.status_code < 400 else logger.warning
        log("callback", status_code=reply.status_code, outcome=reply.message)
    finally:
        logger.thread_safe_remove_keys(["job_id", "request_id"])
    return _response(reply)
