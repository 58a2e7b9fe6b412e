"""API Gateway HTTP API (payload v2) -> verify the gateway's callback and finish the job."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from cutouts import runtime
from cutouts.callback import handle_callback
from cutouts.observability import logger, metrics, tracer

runtime.settings()
app = APIGatewayHttpResolver()


@app.post("/callback/<job_id>")
def callback(job_id: str) -> Response:
    event = app.current_event
    query = event.query_string_parameters or {}
    body = event.decoded_body
    logger.thread_safe_append_keys(job_id=job_id)
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
    logger.thread_safe_remove_keys(["job_id"])
    return Response(
        status_code=reply.status_code, content_type=content_types.APPLICATION_JSON, body={"message": reply.message}
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
