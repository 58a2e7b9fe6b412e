"""Acting on a gateway callback: prove it, then trust the status endpoint rather than the body.

Three steps, in this order, each refusing with a reply rather than an exception:
verify_callback_url (the URL alone), read_callback_body (only once verified), handle_callback.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from cutouts import constants as c
from cutouts.completion import PENDING, RETRY_LATER, settle_job
from cutouts.gateway import GatewayError, GatewayPermanentError, JobStatus
from cutouts.job_store import FAILED, IN_DOUBT, LATE_REASON, SUBMITTING, Job
from cutouts.services import Services

# Only what our own callback URLs contain: anything else is refused before it costs an HMAC.
# [0-9] (not \d) so that other scripts' digits ("²", "٣") fail; fullmatch so "\n" cannot trail.
JOB_ID = re.compile(r"[0-9a-f]{32}")
ATTEMPT = re.compile(r"[1-9][0-9]{0,5}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")
MAX_BODY_BYTES = 64 * 1024


class CallbackReply(NamedTuple):
    status_code: int
    message: str


class VerifiedCallback(NamedTuple):
    """A callback URL whose token matched: the only facts about a caller we trust."""

    job_id: str
    attempt: int


def _reject(services: Services, code: int, message: str) -> CallbackReply:
    services.metrics.count(c.METRIC_CALLBACKS_REJECTED)
    return CallbackReply(code, message)


def reject_request(services: Services, code: int, message: str) -> CallbackReply:
    """A refusal decided from the request's shape (by the handler): counted like every other."""
    return _reject(services, code, message)


def verify_callback_url(
    job_id: str | None, attempt: str | None, token: str | None, services: Services
) -> VerifiedCallback | CallbackReply:
    """Authenticate from the URL alone, so an unauthenticated body is never read or parsed."""
    if not job_id or not attempt or not token:
        return _reject(services, 401, "missing job id, attempt or token")
    if not JOB_ID.fullmatch(job_id) or not ATTEMPT.fullmatch(attempt) or not TOKEN.fullmatch(token):
        return _reject(services, 400, "malformed callback URL")
    attempt_no = int(attempt)
    if not services.signer.verify(job_id, attempt_no, token):
        return _reject(services, 403, "invalid token")
    return VerifiedCallback(job_id, attempt_no)


def read_callback_body(body: bytes | None, services: Services) -> JobStatus | CallbackReply:
    """The status the body claims; it only names the request to ask the gateway about."""
    if body is None or len(body) > MAX_BODY_BYTES:
        return _reject(services, 400, "missing or oversized body")
    try:
        return services.gateway.parse_callback(json.loads(body))
    except RecursionError:  # 64 KiB of "[" is nested far deeper than the parser's stack allows
        return _reject(services, 400, "invalid callback body: nested too deeply")
    except ValueError as exc:  # includes UnicodeDecodeError and int() over its digit limit
        return _reject(services, 400, f"invalid callback body: {exc}")


def handle_callback(caller: VerifiedCallback, claimed: JobStatus, services: Services, now: float) -> CallbackReply:
    """Every refusal happens before any write; an accepted callback changes state only through settle_job."""
    job_id, attempt_no = caller
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
