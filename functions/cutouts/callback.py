"""Acting on a gateway callback: prove it, then trust the status endpoint rather than the body."""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from cutouts import constants as c
from cutouts.completion import PENDING, RETRY_LATER, settle_job
from cutouts.gateway import GatewayError, GatewayPermanentError, parse_status_document
from cutouts.job_store import FAILED, IN_DOUBT, LATE_REASON, SUBMITTING, Job
from cutouts.services import Services

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_BODY_BYTES = 64 * 1024


class CallbackReply(NamedTuple):
    status_code: int
    message: str


def _reject(services: Services, code: int, message: str) -> CallbackReply:
    services.metrics.count(c.METRIC_CALLBACKS_REJECTED)
    return CallbackReply(code, message)


def handle_callback(
    job_id: str | None, attempt: str | None, token: str | None, body: bytes | None, services: Services, now: float
) -> CallbackReply:
    """Every refusal happens before any write; an accepted callback changes state only through settle_job."""
    if not job_id or not attempt or not token:
        return _reject(services, 401, "missing job id, attempt or token")
    if not JOB_ID.match(job_id) or not attempt.isdigit() or len(token) > 128:
        return _reject(services, 400, "malformed callback URL")
    attempt_no = int(attempt)
    if not services.signer.verify(job_id, attempt_no, token):
        return _reject(services, 403, "invalid token")
    if body is None or len(body) > MAX_BODY_BYTES:
        return _reject(services, 400, "missing or oversized body")
    try:
        claimed = parse_status_document(json.loads(body))
    except ValueError as exc:
        return _reject(services, 400, f"invalid callback body: {exc}")

    job = services.store.get(job_id)
    if job is None:
        return _reject(services, 404, "unknown job")
    if job.attempt != attempt_no:
        return _reject(services, 409, "callback for an earlier attempt of this job")
    adopting = job.request_id is None and job.status in (IN_DOUBT, SUBMITTING)
    if not adopting and job.request_id != claimed.request_id:
        return _reject(services, 409, "request_id does not belong to this job")
    if job.is_final and not _late_result_possible(job):
        return CallbackReply(200, f"job already {job.status.lower()}")

    try:
        confirmed = services.gateway.status(claimed.request_id)
    except GatewayPermanentError as exc:
        if exc.http_status == 404:
            return _reject(services, 404, "the gateway does not know this request")
        return CallbackReply(503, "could not confirm the status with the gateway")
    except GatewayError:
        return CallbackReply(503, "could not confirm the status with the gateway")

    if adopting:
        # A request belongs to the one job that made it: a valid URL of one job naming another
        # job's request is refused, so no job can take another's result.
        if not services.store.bind_request(confirmed.request_id, job_id, now):
            return _reject(services, 409, "request_id belongs to another job")
        # Either we adopt the request, or the submit function recorded it meanwhile (a fast gateway
        # can call back before the submitter's write lands): both leave the job with this request.
        services.store.adopt(job_id, attempt_no, confirmed.request_id, now)
        current = services.store.get(job_id)
        if current is None or current.request_id != confirmed.request_id or current.attempt != attempt_no:
            return _reject(services, 409, "request_id does not belong to this job")
        if current.is_final:
            return CallbackReply(200, f"job already {current.status.lower()}")
        job = current
    outcome = settle_job(job, confirmed, services, now)
    if outcome == RETRY_LATER:
        return CallbackReply(503, "result not downloadable yet")
    if outcome == PENDING:
        return CallbackReply(202, f"gateway says {confirmed.status}")
    return CallbackReply(200, outcome)


def _late_result_possible(job: Job) -> bool:
    """A job that timed out waiting for its request may still take that request's billed result."""
    return job.status == FAILED and job.reason == LATE_REASON and job.request_id is not None
