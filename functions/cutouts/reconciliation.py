"""The reconciler: what the callbacks did not finish, the clock does.

Runs on a schedule. Each pass is bounded (``limit`` jobs per state, and the invocation's
remaining time) so it fits the function's time-out; anything left over waits for the next pass.
Each job is handled on its own: a job that raises is counted, logged and sent to the back of
the line, and after ``MAX_JOB_ERRORS`` passes it ends with a report, so one bad job can never
stall the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from cutouts import constants as c
from cutouts.completion import PENDING, RETRY_LATER, settle_job
from cutouts.gateway import GatewayError, GatewayPermanentError
from cutouts.job_store import IN_DOUBT, PARKED, RESUBMIT, RETRY, SUBMITTED, SUBMITTING, SUPERSEDED, WAITING, Job
from cutouts.leases import claim_lease_seconds
from cutouts.notifications import sources_in_notification, upload_notification
from cutouts.observability import logger
from cutouts.outcomes import Outcome, fail_job, fail_new_job, still_superseded
from cutouts.render_dead_letters import sweep_render_dead_letters
from cutouts.services import Services
from cutouts.single_flight import follow_owner
from cutouts.spend_guard import images_left, report_spend
from cutouts.submission import RetryLater, SubmitOutcome, check_source, send_to_gateway
from cutouts.submit_budget import longest_backoff_seconds, queue_visibility_seconds

MAX_JOB_ERRORS = 5
Remaining = Callable[[], float]  # seconds left in this invocation


def _unbounded() -> float:
    return float("inf")


def reconcile(services: Services, now: float, limit: int = 100, remaining: Remaining = _unbounded) -> dict[str, int]:
    settings = services.settings
    reserve = _seconds_one_job_may_take(services)
    counts: Counter[str] = Counter()
    steps: tuple[tuple[str, float, Callable[[Job, Services, float], Outcome]], ...] = (
        (SUBMITTED, now - settings.stale_after_seconds, _check_submitted),
        (SUBMITTING, now - claim_lease_seconds(settings), _check_submitting),
        (RESUBMIT, now + 0.001, _resubmit),
        (IN_DOUBT, now - settings.in_doubt_grace_seconds + 0.001, _resubmit),
        (WAITING, now + 0.001, _check_waiting),
        (RETRY, now - min(settings.max_age_seconds, stranded_after_seconds(settings)), _check_retry),
    )
    for status, updated_before, handle in steps:
        for job in list(services.store.list_by_status(status, updated_before, limit)):
            if remaining() < reserve:
                counts[Outcome.DEFERRED] += 1  # the next pass takes it; the oldest come first then too
                continue
            counts[_isolated(handle, job, services, now)] += 1
    if remaining() >= reserve:
        counts.update(resume_parked(services, now, limit, remaining))
    if settings.dlq_url and services.sqs is not None and remaining() >= reserve:
        counts[Outcome.DEAD_LETTERED] += sweep_dead_letters(services, now)
    if settings.render_dlq_url and services.sqs is not None and remaining() >= reserve:
        counts.update(sweep_render_dead_letters(services, now, remaining, reserve))
    if services.events is not None and remaining() >= reserve:
        sent = services.events.send_pending(now, limit)
        if sent:
            counts[Outcome.EVENTS_SENT] += sent
    return dict(counts)


def resume_parked(services: Services, now: float, limit: int = 100, remaining: Remaining = _unbounded) -> Counter[str]:
    """Send parked jobs on, oldest first, as far as the day's and month's budgets now allow.

    A new UTC day (or month) opens a new budget, and so does a raised one; a refused or ERROR
    POST gives room back. Only as many as the budget has room for are tried, so the others keep
    their place in line (the status index orders them by when they were parked).
    """
    counts: Counter[str] = Counter()
    try:
        report_spend(services, now)
        services.metrics.count(c.METRIC_PARKED_WAITING, services.store.count_by_status(PARKED))
        room = images_left(services, now)
    except Exception:
        logger.exception("could not read the spend; parked jobs wait for the next pass")
        return counts
    reserve = _seconds_one_job_may_take(services)
    for job in list(services.store.list_by_status(PARKED, now + 1, min(limit, room))):
        if remaining() < reserve:
            counts[Outcome.DEFERRED] += 1
            continue
        outcome = _isolated(_resume, job, services, now)
        counts[outcome] += 1
        if outcome == Outcome.PARKED:
            break  # the budget filled meanwhile: the rest keep their place
    return counts


def _replaced(job: Job, newest: str | None, services: Services, now: float) -> bool:
    """A newer upload of the key took over (``newest``: the job its key record names): end this one
    SUPERSEDED before sending it anywhere, since its result would never land."""
    if newest in (None, job.job_id) and not still_superseded(job, services, now):
        return False
    services.store.mark_final(job, SUPERSEDED, now, "superseded", "a newer version of the key was uploaded")
    return True


def _resume(job: Job, services: Services, now: float) -> Outcome:
    """A parked job within budget: read the source again, then claim and POST (or park it again)."""
    if _replaced(job, services.store.latest_job_for(job.bucket, job.key), services, now):
        return Outcome.SUPERSEDED
    checked = check_source(job, services, now, stored=True)
    if isinstance(checked, SubmitOutcome):
        return checked.result
    job.content_hash = checked.content_hash or job.content_hash
    if not services.store.unpark(job, now, claim_lease_seconds(services.settings)):
        return Outcome.BUSY
    try:
        outcome = send_to_gateway(job, services, now, on_transient=RESUBMIT, final_delivery=False).result
    except RetryLater:
        return Outcome.GATEWAY_BUSY
    if outcome == Outcome.SUBMITTED:
        services.metrics.count(c.METRIC_JOBS_RESUMED)
        return Outcome.RESUMED
    return outcome


def _seconds_one_job_may_take(services: Services) -> float:
    """A status call and a download (three HTTP time-outs), plus the AWS calls around them."""
    return 4 * services.settings.http_timeout_seconds + 5


def _isolated(handle: Callable[[Job, Services, float], Outcome], job: Job, services: Services, now: float) -> Outcome:
    try:
        return handle(job, services, now)
    except Exception as exc:
        services.metrics.count(c.METRIC_RECONCILE_JOB_ERRORS)
        logger.exception("reconcile could not handle a job", job_id=job.job_id, status=job.status)
        return _count_error(job, services, now, f"{type(exc).__name__}: {exc}")


def _count_error(job: Job, services: Services, now: float, error: str) -> Outcome:
    try:
        errors = services.store.note_error(job, now, error)
        if errors >= MAX_JOB_ERRORS:
            fail_job(
                job,
                services,
                now,
                reason="reconcile-failed",
                message=f"the reconciler failed on this job {errors} times; last: {error}",
            )
            return Outcome.FAILED
    except Exception:
        logger.exception("could not record the reconcile error", job_id=job.job_id)
    return Outcome.ERROR


def _too_old(job: Job, services: Services, now: float) -> bool:
    """Older than the maximum age, counted from the upload or, for a job that was parked, its resumption."""
    return now - max(job.created_at, job.resumed_at or 0) > services.settings.max_age_seconds


def _expire(job: Job, services: Services, now: float) -> Outcome:
    ended = fail_job(
        job,
        services,
        now,
        reason="timed-out",
        message=f"no result after {int(now - job.created_at)} s (last state {job.status})",
    )
    if ended:
        services.metrics.count(c.METRIC_STUCK_JOBS_FAILED)
    return Outcome.TIMED_OUT


def _check_submitted(job: Job, services: Services, now: float) -> Outcome:
    """Ask the gateway, even for a job past its age: a result it already billed is still written."""
    outcome = _check_status(job, services, now)
    if outcome in (PENDING, Outcome.STATUS_UNAVAILABLE) and _too_old(job, services, now):
        return _expire(job, services, now)
    if outcome == RETRY_LATER and now - job.created_at > 2 * services.settings.max_age_seconds:
        return _expire(job, services, now)  # confirmed, but never downloadable
    return outcome


def _check_submitting(job: Job, services: Services, now: float) -> Outcome:
    if _too_old(job, services, now):
        return _expire(job, services, now)
    if job.lease_until is not None and job.lease_until < now:
        # The submit function died holding the claim, which it takes just before its POST:
        # the POST may or may not have landed.
        services.store.mark_in_doubt(job.job_id, job.attempt, now, "the submitting function stopped before recording")
        return Outcome.IN_DOUBT
    return Outcome.BUSY


def stranded_after_seconds(settings: Any) -> int:
    """How long a RETRY job can go untouched while a queue message for it is still alive.

    Its message is hidden for at most the longest back-off, then for at most one invocation (the
    queue's visibility). Untouched for longer, the job has lost its message.
    """
    return queue_visibility_seconds(settings.http_timeout_seconds, settings.max_image_bytes) + longest_backoff_seconds(
        settings.retry_base_seconds, settings.max_receives
    )


def _check_retry(job: Job, services: Services, now: float) -> Outcome:
    """RETRY waits for its queue message; one stranded without it gets its message again.

    A message can be lost to a CLI whose send failed after it reopened the job, or to any path
    that leaves RETRY with no message behind it. The upload's notification goes back on the queue,
    so the job takes the submit function's path, within its concurrency and back-off, rather
    than a POST from here. If the first message was only late, one of the two is a duplicate.
    """
    if _too_old(job, services, now):
        return _expire(job, services, now)
    if now - job.updated_at < stranded_after_seconds(services.settings):
        return Outcome.WAITING
    return _requeue(job, services, now)


def _requeue(job: Job, services: Services, now: float) -> Outcome:
    settings = services.settings
    if not settings.queue_url or services.sqs is None:
        return Outcome.WAITING  # the maximum age ends it, as before there was a way back
    record = services.store.latest_record(job.bucket, job.key)
    if _replaced(job, record.job_id, services, now):
        return Outcome.SUPERSEDED
    sequencer = record.sequencer if record.job_id == job.job_id else None
    body = upload_notification(job.bucket, job.key, job.version_id, job.etag, sequencer)
    services.sqs.send_message(QueueUrl=settings.queue_url, MessageBody=body)
    services.store.touch(job.job_id, RETRY, now)  # not again before another stranded_after_seconds
    logger.warning(
        "a job waited in RETRY past the longest a queue message can take; queued it again", job_id=job.job_id
    )
    return Outcome.REQUEUED


def _check_waiting(job: Job, services: Services, now: float) -> Outcome:
    """A job waiting for identical bytes: copy the owner's cutout, share its failure, or take over."""
    if _too_old(job, services, now) and not _owner_parked(job, services, now):
        return _expire(job, services, now)
    if not job.content_hash:
        return _pay(job, services, now)
    owner_id, since = services.store.claim_content(job.content_hash, job.job_id, now)
    if owner_id != job.job_id:
        waited = follow_owner(job, owner_id, since, services, now, stored=True)
        if waited is not None:
            return waited.result
    return _pay(job, services, now)


def _owner_parked(job: Job, services: Services, now: float) -> bool:
    """Whether the job paying for these bytes is parked at the budget, or resumed within the maximum age.

    Its waiters wait with it: their age, like the owner's, does not count while it is parked.
    """
    owner_id = services.store.content_owner(job.content_hash) if job.content_hash else None
    owner = services.store.get(owner_id) if owner_id and owner_id != job.job_id else None
    if owner is None or owner.is_final:
        return False
    return owner.status == PARKED or not _too_old(owner, services, now)


def _pay(job: Job, services: Services, now: float) -> Outcome:
    """Take over from a WAITING state: check the source again, claim, POST.

    A refused POST leaves the job RESUBMIT, not RETRY: no queue message is coming back for a job
    the reconciler sent, so the reconciler's next pass sends it again (within ``maxAttempts``).
    """
    checked = check_source(job, services, now, stored=True)
    if isinstance(checked, SubmitOutcome):
        return checked.result
    if not services.store.claim(job, now, claim_lease_seconds(services.settings), take_from=WAITING):
        return Outcome.BUSY
    try:
        return send_to_gateway(job, services, now, on_transient=RESUBMIT, final_delivery=False).result
    except RetryLater:
        return Outcome.GATEWAY_BUSY


def _check_status(job: Job, services: Services, now: float) -> Outcome:
    try:
        status = services.gateway.status(job.request_id or "")
    except GatewayPermanentError as exc:
        if exc.http_status != 404:
            return Outcome.STATUS_UNAVAILABLE
        fail_job(
            job,
            services,
            now,
            reason="model-failed",
            message="the gateway no longer knows this request",
            http_status=404,
        )
        return Outcome.FAILED
    except GatewayError:
        return Outcome.STATUS_UNAVAILABLE
    outcome = settle_job(job, status, services, now)
    if outcome == PENDING:
        services.store.touch(job.job_id, SUBMITTED, now)
    return outcome


def _resubmit(job: Job, services: Services, now: float) -> Outcome:
    """Send a job again (the gateway said ERROR, or a POST's fate stayed unknown past the grace)."""
    if _too_old(job, services, now):
        return _expire(job, services, now)
    if job.tries >= services.settings.max_attempts:
        fail_job(
            job,
            services,
            now,
            reason="gateway-error-exhausted",
            message=f"gave up after {job.tries} attempts: {job.error or 'no result'}",
        )
        return Outcome.FAILED
    if _replaced(job, services.store.latest_job_for(job.bucket, job.key), services, now):
        return Outcome.SUPERSEDED
    checked = check_source(job, services, now, stored=True)
    if isinstance(checked, SubmitOutcome):
        return checked.result
    job.content_hash = checked.content_hash or job.content_hash
    back_to = job.status
    if not services.store.claim_resubmission(job, now, claim_lease_seconds(services.settings)):
        return Outcome.BUSY
    job.attempt += 1
    job.tries += 1
    job.status = SUBMITTING
    job.request_id = None
    try:
        return send_to_gateway(
            job, services, now, on_transient=RESUBMIT if back_to == RESUBMIT else IN_DOUBT, final_delivery=False
        ).result
    except RetryLater:
        return Outcome.GATEWAY_BUSY


def sweep_dead_letters(services: Services, now: float, max_batches: int = 5) -> int:
    """Give every dead-lettered upload a failure report, then take its message off the queue.

    The report (and the FAILED job behind it, which ``retry --reason dead-lettered`` reopens)
    holds everything needed to send the upload again, so a message is deleted once it has been
    reported, and the dead-letter alarm sees each dead letter once. A message whose job moved on
    (it ended, is in flight again, or an operator reopened it after the message was sent) is
    stale: it is deleted without failing anything.
    """
    reported = 0
    for _ in range(max_batches):
        reply = services.sqs.receive_message(
            QueueUrl=services.settings.dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=max(60, services.settings.stale_after_seconds),
            WaitTimeSeconds=0,
            AttributeNames=["SentTimestamp"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            try:
                reported += _report_dead_letter(message, services, now)
            except Exception:
                logger.exception("could not report a dead letter; it stays for the next pass")
                continue
            services.sqs.delete_message(QueueUrl=services.settings.dlq_url, ReceiptHandle=message["ReceiptHandle"])
    if reported:
        services.metrics.count(c.METRIC_DEAD_LETTERS_REPORTED, reported)
    return reported


def _report_dead_letter(message: dict[str, Any], services: Services, now: float) -> int:
    sent_at = int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000 or now
    reported = 0
    for source in sources_in_notification(message.get("Body", "{}")):
        job = services.store.get(source.job_id)
        text = "the upload's message reached the dead-letter queue after repeated failures"
        if job is None:
            ended = fail_new_job(source.new_job(), services, now, reason="dead-lettered", message=text)
        elif job.status == RETRY and (job.reopened_at or 0) <= sent_at:
            ended = fail_job(job, services, now, reason="dead-lettered", message=text)
        else:
            continue  # final, in flight, or touched since the message was sent: not this message's to fail
        reported += int(ended)
    return reported
