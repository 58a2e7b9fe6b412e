"""The reconciler: what the callbacks did not finish, the clock does.

Runs on a schedule. Each pass is bounded (``limit`` jobs per state) so it fits the function's
time-out; anything left over waits for the next pass.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cutouts import constants as c
from cutouts.completion import PENDING, settle_job
from cutouts.gateway import GatewayError, GatewayPermanentError
from cutouts.job_store import IN_DOUBT, RESUBMIT, RETRY, SUBMITTED, SUBMITTING, Job
from cutouts.outcomes import fail_job, fail_new_job
from cutouts.services import Services
from cutouts.submission import CLAIM_LEASE_SECONDS, RetryLater, send_to_gateway, sources_in_notification


def reconcile(services: Services, now: float, limit: int = 100) -> dict[str, int]:
    settings = services.settings
    counts: Counter[str] = Counter()
    store = services.store
    for job in list(store.list_by_status(SUBMITTED, now - settings.stale_after_seconds, limit)):
        if _expire(job, services, now):
            counts["timed-out"] += 1
            continue
        counts[_check_status(job, services, now)] += 1
    for job in list(store.list_by_status(SUBMITTING, now - CLAIM_LEASE_SECONDS, limit)):
        if _expire(job, services, now):
            counts["timed-out"] += 1
        elif job.lease_until is not None and job.lease_until < now:
            # The submit function died holding the claim: its POST may or may not have landed.
            store.mark_in_doubt(job.job_id, job.attempt, now, "the submitting function stopped before recording")
            counts["in-doubt"] += 1
    for status, age in ((RESUBMIT, 0), (IN_DOUBT, settings.in_doubt_grace_seconds)):
        for job in list(store.list_by_status(status, now - age + 0.001, limit)):
            if _expire(job, services, now):
                counts["timed-out"] += 1
            else:
                counts[_resubmit(job, services, now)] += 1
    for job in list(store.list_by_status(RETRY, now - settings.max_age_seconds, limit)):
        counts["timed-out" if _expire(job, services, now) else "waiting"] += 1
    if settings.dlq_url and services.sqs is not None:
        counts["dead-lettered"] += sweep_dead_letters(services, now)
    return dict(counts)


def _expire(job: Job, services: Services, now: float) -> bool:
    if now - job.created_at <= services.settings.max_age_seconds:
        return False
    ended = fail_job(
        job,
        services,
        now,
        reason="timed-out",
        message=f"no result after {int(now - job.created_at)} s (last state {job.status})",
    )
    if ended:
        services.metrics.count(c.METRIC_STUCK_JOBS_FAILED)
    return True


def _check_status(job: Job, services: Services, now: float) -> str:
    try:
        status = services.gateway.status(job.request_id or "")
    except GatewayPermanentError as exc:
        if exc.http_status != 404:
            return "status-unavailable"
        fail_job(
            job,
            services,
            now,
            reason="model-failed",
            message="the gateway no longer knows this request",
            http_status=404,
        )
        return "failed"
    except GatewayError:
        return "status-unavailable"
    outcome = settle_job(job, status, services, now)
    if outcome == PENDING:
        services.store.touch(job.job_id, SUBMITTED, now)
    return outcome


def _resubmit(job: Job, services: Services, now: float) -> str:
    if job.attempt >= services.settings.max_attempts:
        fail_job(
            job,
            services,
            now,
            reason="gateway-error-exhausted",
            message=f"gave up after {job.attempt} attempts: {job.error or 'no result'}",
        )
        return "failed"
    back_to = job.status
    if not services.store.claim_resubmission(job, now, CLAIM_LEASE_SECONDS):
        return "busy"
    job.attempt += 1
    job.status = SUBMITTING
    job.request_id = None
    try:
        return send_to_gateway(
            job, services, now, on_transient=RESUBMIT if back_to == RESUBMIT else IN_DOUBT, final_delivery=False
        ).result
    except RetryLater:
        return "gateway-busy"


def sweep_dead_letters(services: Services, now: float, max_batches: int = 5) -> int:
    """Give every dead-lettered upload a failure report; the messages stay for a redrive."""
    reported = 0
    for _ in range(max_batches):
        reply = services.sqs.receive_message(
            QueueUrl=services.settings.dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=max(60, services.settings.stale_after_seconds),
            WaitTimeSeconds=0,
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            reported += _report_dead_letter(message, services, now)
    return reported


def _report_dead_letter(message: dict[str, Any], services: Services, now: float) -> int:
    reported = 0
    for source in sources_in_notification(message.get("Body", "{}")):
        job = services.store.get(source.job_id)
        if job is not None and job.is_final:
            continue
        text = "the upload's message reached the dead-letter queue after repeated failures"
        if job is None:
            ended = fail_new_job(source.new_job(), services, now, reason="dead-lettered", message=text)
        else:
            ended = fail_job(job, services, now, reason="dead-lettered", message=text)
        reported += int(ended)
    return reported
