"""API Gateway HTTP API (payload v2) -> verify the gateway's callback and finish the job.

The route ``POST /callback/{job_id}`` is public: anyone can send anything. So the event is read
from the raw dict, each field checked for its type, and every malformed request is answered with
a 4xx rather than an exception (each exception is a Lambda error, and errors page operators).
The body is decoded and parsed only after the URL's token is verified.

API Gateway does the routing, so there is no resolver: it would add ~35 ms of imports to every
cold start for a router with one entry.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cutouts import runtime
from cutouts.callback import (
    CallbackReply,
    VerifiedCallback,
    handle_callback,
    read_callback_body,
    reject_request,
    verify_callback_url,
)
from cutouts.observability import logger, metrics, tracer
from cutouts.services import Services

runtime.settings()

MAX_LOGGED_CHARS = 128
# Kept back from the invocation's remaining time for what follows the download: the job's
# writes and the reply. API Gateway answers 503 itself at ~29 s, whatever the function does.
SAFETY_MARGIN_SECONDS = 3.0


class MalformedRequest(ValueError):
    """A field of the event does not have the shape API Gateway gives it."""


def _field(doc: Any, *path: str) -> Any:
    """``doc[path[0]][path[1]]...``, or None where a level is missing or not an object."""
    for name in path:
        doc = doc.get(name) if isinstance(doc, dict) else None
    return doc


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedRequest(f"expected text, got {type(value).__name__}")


def _body(event: dict[str, Any]) -> bytes | None:
    """The request body as bytes: base64-decoded when API Gateway says so (binary need not be UTF-8)."""
    body = _text(event.get("body"))
    if body is None:
        return None
    if event.get("isBase64Encoded") is True:
        return base64.b64decode(body, validate=True)
    return body.encode()  # a lone surrogate raises UnicodeEncodeError, a ValueError


def _response(reply: CallbackReply) -> dict[str, Any]:
    return {
        "statusCode": reply.status_code,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": reply.message}),
    }


def _within_invocation(services: Services, context: LambdaContext) -> Services:
    """This invocation's collaborators: the gateway call and the download end before it must answer.

    Past the deadline they raise their transient errors, so the reply is a 503: the gateway
    calls back again, or the reconciler finishes the job.
    """
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    return dataclasses.replace(
        services,
        gateway=services.gateway.until(deadline),
        media_policy=services.media_policy._replace(deadline=deadline),
    )


def _callback(event: Any, context: LambdaContext) -> CallbackReply:
    services = _within_invocation(runtime.services(), context)
    method = _field(event, "requestContext", "http", "method")
    if not isinstance(method, str):
        return reject_request(services, 400, "malformed request")
    if method != "POST":
        return reject_request(services, 405, "method not allowed")
    try:
        job_id = _text(_field(event, "pathParameters", "job_id"))
        # Payload v2 joins a repeated parameter with commas: such a value fails the URL's patterns.
        attempt = _text(_field(event, "queryStringParameters", "attempt"))
        token = _text(_field(event, "queryStringParameters", "token"))
    except MalformedRequest:
        return reject_request(services, 400, "malformed request")
    logger.thread_safe_append_keys(job_id=job_id[:MAX_LOGGED_CHARS] if job_id else None)
    caller = verify_callback_url(job_id, attempt, token, services)
    if not isinstance(caller, VerifiedCallback):
        return caller
    try:
        body = _body(event)
    except ValueError:  # binascii.Error, UnicodeEncodeError, MalformedRequest
        return reject_request(services, 400, "body is neither valid base64 nor text")
    claimed = read_callback_body(body, services)
    if isinstance(claimed, CallbackReply):
        return claimed
    # Authenticated, not yet confirmed with the gateway: a correlation id, not a fact.
    logger.thread_safe_append_keys(request_id=claimed.request_id[:MAX_LOGGED_CHARS])
    return handle_callback(caller, claimed, services, time.time())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        reply = _callback(event, context)
        log = logger.info if reply.status_code < 400 else logger.warning
        log("callback", status_code=reply.status_code, outcome=reply.message)
    finally:
        logger.thread_safe_remove_keys(["job_id", "request_id"])
    return _response(reply)
