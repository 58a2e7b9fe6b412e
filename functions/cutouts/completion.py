"""Finishing a job from a status the gateway confirmed: one path for the webhook and the reconciler."""

from __future__ import annotations

from datetime import datetime

from cutouts import constants as c
from cutouts.gateway import COMPLETED, ERROR, FAILED, PROCESSING, QUEUED, JobStatus
from cutouts.job_outputs import job_profile, keep_master_copy, renders, store_master
from cutouts.job_store import COMPLETED as COMPLETED_STATUS
from cutouts.job_store import SUPERSEDED, Job, Lease
from cutouts.keys import cutout_metadata, failure_key_for, output_key_for
from cutouts.leases import output_lease_seconds
from cutouts.masters import master_key
from cutouts.outcomes import Outcome, OutputBusy, fail_job, still_superseded
from cutouts.reports import remove_failure_report
from cutouts.safe_download import MediaRejected, MediaUnavailable, fetch_media_to_s3
from cutouts.services import Services
from cutouts.single_flight import hand_on
from cutouts.spend_guard import give_back

PENDING, RETRY_LATER = Outcome.PENDING, Outcome.RETRY_LATER


def settle_job(job: Job, status: JobStatus, services: Services, now: float) -> Outcome:
    """Act on a confirmed status; return what happened (completed, failed, resubmit, pending, ...)."""
    try:
        return _settle(job, status, services, now)
    except OutputBusy:
        return RETRY_LATER  # another actor is writing the key's outputs: the next try finds it done


def _settle(job: Job, status: JobStatus, services: Services, now: float) -> Outcome:
    if status.status in (QUEUED, PROCESSING):
        return PENDING
    if status.status == COMPLETED:
        return _complete(job, status, services, now)
    if status.status == FAILED:
        fail_job(
            job,
            services,
            now,
            reason="model-failed",
            message=status.error or "the model reported FAILED",
            gateway_status=FAILED,
            gateway_error=status.error,
        )
        return Outcome.FAILED
    if status.status == ERROR:
        if status.request_id == job.request_id:
            give_back(job.job_id, job.attempt, services, now)  # ERROR is not charged; once per attempt
        if job.tries < services.settings.max_attempts:
            services.store.mark_resubmit(job.job_id, status.request_id, now, status.error)
            return Outcome.RESUBMIT
        fail_job(
            job,
            services,
            now,
            reason="gateway-error-exhausted",
            message=f"the gateway reported ERROR on {job.tries} attempts: {status.error}",
            gateway_status=ERROR,
            gateway_error=status.error,
        )
        return Outcome.FAILED
    return PENDING


def _complete(job: Job, status: JobStatus, services: Services, now: float) -> Outcome:
    settings = services.settings
    if still_superseded(job, services, now):
        # A newer upload of this key owns the output key (its submit told us): do not overwrite it.
        services.store.mark_final(job, SUPERSEDED, now, "superseded", "a newer version of the key was uploaded")
        return Outcome.SUPERSEDED
    if not status.media_urls:
        fail_job(
            job,
            services,
            now,
            reason="bad-output",
            message="the gateway reported COMPLETED without a media_url",
            gateway_status=COMPLETED,
        )
        return Outcome.FAILED
    lease = services.store.lease_output(job.bucket, job.key, job.job_id, now, output_lease_seconds(settings))
    if lease is Lease.SUPERSEDED:
        services.store.mark_final(job, SUPERSEDED, now, "superseded", "a newer version of the key was uploaded")
        return Outcome.SUPERSEDED
    if lease is Lease.BUSY:
        return RETRY_LATER
    try:
        profile = job_profile(job, services)
        if renders(profile):
            assert profile is not None
            output_key = master_key(job.key, settings.input_prefix, settings.work_prefix)
            written = store_master(job, status, profile, services, now)
        else:
            output_key = output_key_for(job.key, settings.input_prefix, settings.output_prefix)
            written = _write_cutout(job, status, output_key, services, now)
            if written == Outcome.COMPLETED:
                keep_master_copy(job, output_key, services)
    finally:
        services.store.release_output(job.bucket, job.key, job.job_id)
    if written != "completed":
        return written
    services.metrics.count(c.METRIC_COMPLETED)
    job.output_key = output_key
    hand_on(job, services, now)
    if job.created_at:
        services.metrics.seconds(c.METRIC_END_TO_END_SECONDS, max(0.0, now - job.created_at))
    gateway_seconds = _gateway_seconds(status) or (now - job.submitted_at if job.submitted_at else None)
    if gateway_seconds is not None:
        services.metrics.seconds(c.METRIC_GATEWAY_SECONDS, max(0.0, gateway_seconds))
    return Outcome.COMPLETED


def _write_cutout(job: Job, status: JobStatus, output_key: str, services: Services, now: float) -> Outcome:
    """Under the key's output lease: download the cutout, end the job, and clear the key's report.

    If the job's final write loses (it moved on since it was read), the cutout it wrote is taken
    back unless the job completed with this very request meanwhile; the lease is still held, so
    no other version's output can have landed in between.
    """
    settings = services.settings
    metadata = cutout_metadata(job.key, job.version, job.job_id, status.request_id)
    try:
        fetch_media_to_s3(
            status.media_urls[0], services.media_policy, services.s3, job.bucket, output_key, metadata, services.resolve
        )
    except MediaRejected as exc:
        fail_job(job, services, now, reason="bad-output", message=str(exc), gateway_status=COMPLETED)
        return Outcome.FAILED
    except MediaUnavailable:
        return RETRY_LATER
    if not services.store.mark_completed(job, now, output_key):
        current = services.store.get(job.job_id)
        if current is None or current.status != COMPLETED_STATUS or current.request_id != status.request_id:
            services.s3.delete_object(Bucket=job.bucket, Key=output_key)
        if current is not None and current.superseded_by and not current.is_final:
            services.store.mark_final(current, SUPERSEDED, now, "superseded", "a newer version of the key was uploaded")
        return Outcome.ALREADY_FINISHED
    # The lease is held and this job is the key's newest: any report of the key is stale now.
    remove_failure_report(
        services.s3, job.bucket, failure_key_for(job.key, settings.input_prefix, settings.failure_prefix)
    )
    return Outcome.COMPLETED


def _gateway_seconds(status: JobStatus) -> float | None:
    try:
        if status.created_at and status.completed_at:
            start = datetime.fromisoformat(status.created_at.replace("Z", "+00:00"))
            end = datetime.fromisoformat(status.completed_at.replace("Z", "+00:00"))
            return (end - start).total_seconds()
    except ValueError:
        return None
    return None
