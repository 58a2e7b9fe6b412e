"""Ending a job: the failure path every use case shares, so a report is written the same way."""

from __future__ import annotations

from enum import StrEnum

from cutouts import constants as c
from cutouts.job_store import FAILED, RETRY, SUPERSEDED, Job, Lease
from cutouts.keys import failure_key_for, fits_s3_key, output_key_for
from cutouts.leases import claim_lease_seconds, output_lease_seconds
from cutouts.reports import FailureReport, advice_for, cutout_owner, remove_failure_report, write_failure_report
from cutouts.services import Services


class Outcome(StrEnum):
    """What a use case did with a job: one vocabulary for submit, callbacks and the reconciler."""

    SUBMITTED = "submitted"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"
    FAILED = "failed"
    IN_DOUBT = "in-doubt"
    IGNORED = "ignored"
    CACHED = "cached"
    WAITING = "waiting"
    COMPLETED = "completed"
    PENDING = "pending"
    RETRY_LATER = "retry-later"
    RESUBMIT = "resubmit"
    ALREADY_FINISHED = "already-finished"
    STATUS_UNAVAILABLE = "status-unavailable"
    TIMED_OUT = "timed-out"
    BUSY = "busy"
    GATEWAY_BUSY = "gateway-busy"
    ERROR = "error"
    DEFERRED = "deferred"
    DEAD_LETTERED = "dead-lettered"
    EVENTS_SENT = "events-sent"  # completion events the reconciler sent late (job_events)
    PARKED = "parked"  # the budget is spent: kept, not sent, not paid (spend_guard)
    RESUMED = "resumed"  # a parked job sent on within a new budget
    REQUEUED = "requeued"  # a job stranded in RETRY without its queue message got one again


class OutputBusy(RuntimeError):
    """Another actor is writing this key's outputs right now: try again shortly."""


def fail_job(
    job: Job,
    services: Services,
    now: float,
    *,
    reason: str,
    message: str,
    what_to_do: str | None = None,
    gateway_status: str | None = None,
    gateway_error: str | None = None,
    http_status: int | None = None,
) -> bool:
    """Write the failure report, then end the job as FAILED. False if the job had already ended.

    The report is written under the key's output lease, so only the newest version's job writes
    it and no other actor writes the key meanwhile; a job a newer version took over ends
    SUPERSEDED instead, with no report. If the final write loses (the job moved on since it was
    read), the report is taken back: a report never stands beside a job that did not fail.
    """
    settings = services.settings
    if still_superseded(job, services, now):  # a newer version took over: its outcome is the one to report
        services.store.mark_final(job, SUPERSEDED, now, "superseded", message)
        return False
    lease = services.store.lease_output(job.bucket, job.key, job.job_id, now, output_lease_seconds(settings))
    if lease is Lease.SUPERSEDED:
        services.store.mark_final(job, SUPERSEDED, now, "superseded", "a newer version of the key was uploaded")
        return False
    if lease is Lease.BUSY:
        raise OutputBusy(f"another job is writing the outputs of {job.key}")
    report_key = failure_key_for(job.key, settings.input_prefix, settings.failure_prefix)
    try:
        report = FailureReport(
            source_bucket=job.bucket,
            source_key=job.key,
            source_version=job.version,
            job_id=job.job_id,
            reason=reason,
            message=message,
            what_to_do=what_to_do or advice_for(reason),
            request_id=job.request_id,
            gateway_status=gateway_status,
            gateway_error=gateway_error,
            http_status=http_status,
            attempts=job.tries,
            earlier_cutout=_earlier_cutout(job, services),
        )
        write_failure_report(services.s3, job.bucket, report_key, report)
        if services.store.mark_final(job, FAILED, now, reason, message):
            services.metrics.failure(reason)
            return True
        current = services.store.get(job.job_id)
        if current is not None and current.superseded_by and not current.is_final:
            services.store.mark_final(current, SUPERSEDED, now, "superseded", message)
        if current is None or current.status != FAILED:
            remove_failure_report(services.s3, job.bucket, report_key)  # ours, and wrong: take it back
        return False
    finally:
        services.store.release_output(job.bucket, job.key, job.job_id)


def still_superseded(job: Job, services: Services, now: float) -> bool:
    """Whether the job's ``superseded_by`` still holds, by the key record at this moment.

    On an unversioned bucket a key put back to earlier bytes makes the older job the newest
    again, and a notice from the version in between can land after that: the key record, not
    the notice, decides. A stale notice is withdrawn (``reinstate``).
    """
    if not job.superseded_by:
        return False
    if services.store.latest_job_for(job.bucket, job.key) != job.job_id:
        return True
    if not job.is_final and services.store.reinstate(job, now):
        job.superseded_by = None
        return False
    return True


def _earlier_cutout(job: Job, services: Services) -> str | None:
    """The key's cutout, if one stands there from an earlier upload or run (the report says so)."""
    settings = services.settings
    output_key = output_key_for(job.key, settings.input_prefix, settings.output_prefix)
    if not fits_s3_key(output_key):
        return None
    owner = cutout_owner(services.s3, job.bucket, output_key)
    return output_key if owner is not None else None


def fail_new_job(job: Job, services: Services, now: float, *, reason: str, message: str) -> bool:
    """A failure found before the job was claimed (the object vanished, or it dead-lettered).

    Claiming first gives the failure a job record like any other, and makes a repeat a no-op.
    """
    if not services.store.claim(job, now, claim_lease_seconds(services.settings)):
        return False
    try:
        return fail_job(job, services, now, reason=reason, message=message)
    except Exception:
        # The report could not be written: give the job back so the queue delivers it again.
        services.store.release(job.job_id, job.attempt, now, f"could not report {reason}", to_status=RETRY)
        raise


# Failure reasons the stack alarms on: nothing will succeed until a person acts.
GATEWAY_ALARM_METRICS = {
    "gateway-unauthorized": c.METRIC_GATEWAY_AUTH_ERRORS,
    "gateway-forbidden": c.METRIC_GATEWAY_AUTH_ERRORS,
    "gateway-key-missing": c.METRIC_GATEWAY_AUTH_ERRORS,
    "gateway-insufficient-balance": c.METRIC_GATEWAY_BALANCE_ERRORS,
}
