"""The render dead-letter queue, swept into failure reports: nothing lost without a word.

A render request fails on every delivery and lands in the render dead-letter queue (alarmed).
Before this sweep the user saw nothing: a ``prepare`` request (an upload to be normalised, or
checked for being already cut out) has no job record yet, and a ``render`` request's job is
COMPLETED while its outputs never appear. The reconciler takes each message off the queue after
it has done what is owed:

- ``prepare``: the upload gets a failure report and a FAILED job (``prepare-failed``; ``retry``
  reopens it), unless the key moved on (a newer upload owns it, or this version's job already
  exists and ended or is in flight). A COMPLETED job (an upload already cut out, whose rendering
  died) is treated as a ``render``.
- ``render``: each output of the job's profile that is not there (no object, or one from another
  job) gets a report under the output's report key (``render-dead-lettered``; it replaces a report
  an earlier delivery wrote: the reconciler may write reports, not read them), under the key's
  output lease, only while the job is the key's newest and COMPLETED. ``rerender`` writes the
  outputs later without a gateway call.

A malformed body is deleted and counted, never retried. A message whose handling raised stays on
the queue for the next pass (it becomes visible again after the visibility time-out).
No Pillow here: the reconcile function imports this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from cutouts import constants as c
from cutouts.job_outputs import job_profile
from cutouts.job_store import COMPLETED, RETRY, Job, Lease
from cutouts.keys import fits_s3_key, job_version, relative_key
from cutouts.masters import output_report_key
from cutouts.observability import logger
from cutouts.outcomes import fail_job, fail_new_job
from cutouts.profiles import Profile, Profiles, output_key
from cutouts.render_requests import PREPARE, BadRequest, RenderRequest, parse_request
from cutouts.reports import FailureReport, advice_for, cutout_owner, write_failure_report
from cutouts.services import Services

# Counts in the reconciler's pass summary.
REPORTED = "render-dead-lettered"  # failure reports written (an upload's, or one per missing output)
STALE = "render-dead-letters-stale"  # the key moved on: deleted, nothing written
DROPPED = "render-dead-letters-dropped"  # not a render request at all: deleted

OUTPUT_REASON = "render-dead-lettered"  # a missing output's report (reports.ADVICE)
RENDER_LEASE_SECONDS = 60.0  # long enough to HEAD and write a profile's reports


def sweep_render_dead_letters(
    services: Services, now: float, remaining: Callable[[], float], reserve: float, max_batches: int = 5
) -> Counter[str]:
    """Report every dead-lettered render request, then delete it (see the module docstring)."""
    queue_url = services.settings.render_dlq_url
    counts: Counter[str] = Counter()
    for _ in range(max_batches):
        if remaining() < reserve:
            break  # the next pass takes the rest
        reply = services.sqs.receive_message(
            QueueUrl=queue_url,
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
                outcome, reported = _handle(message, services, now)
            except Exception:
                logger.exception("could not report a render dead letter; it stays for the next pass")
                continue
            services.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            counts[outcome] += reported if outcome == REPORTED else 1
    if counts[REPORTED]:
        services.metrics.count(c.METRIC_DEAD_LETTERS_REPORTED, counts[REPORTED])
    return +counts  # drop zero counts


def _handle(message: dict[str, Any], services: Services, now: float) -> tuple[str, int]:
    try:
        request = parse_request(str(message.get("Body", "")))
    except BadRequest as exc:
        logger.error("render dead letter dropped", problem=str(exc), message_id=message.get("MessageId"))
        return DROPPED, 1
    sent_at = int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000 or now
    if request.kind == PREPARE:
        reported = _report_prepare(request, services, now, sent_at)
    else:
        reported = _report_render(request, services.store.get(request.job_id), services, now)
    return (REPORTED, reported) if reported else (STALE, 1)


def _report_prepare(request: RenderRequest, services: Services, now: float, sent_at: float) -> int:
    job = services.store.get(request.job_id)
    text = "preparing the upload for the gateway failed on every try (its render request was dead-lettered)"
    if job is None:
        if services.store.latest_job_for(request.bucket, request.key) not in (None, request.job_id):
            return 0  # a newer upload of the key owns its outputs
        job = Job(
            job_id=request.job_id,
            bucket=request.bucket,
            key=request.key,
            version=job_version(request.version_id, request.etag),
            status="",
            version_id=request.version_id,
            etag=request.etag,
            profile=request.profile,
        )
        return int(fail_new_job(job, services, now, reason="prepare-failed", message=text))
    if job.status == RETRY and (job.reopened_at or 0) <= sent_at:
        return int(fail_job(job, services, now, reason="prepare-failed", message=text))
    if job.status == COMPLETED:  # already cut out: completed from its own alpha, then rendering died
        return _report_render(request, job, services, now)
    return 0  # ended, in flight, or reopened since the message was sent: not this message's to fail


def _report_render(request: RenderRequest, job: Job | None, services: Services, now: float) -> int:
    store, settings = services.store, services.settings
    if job is None or job.status != COMPLETED:
        return 0  # gone, or ended otherwise (its own report says so)
    if store.latest_job_for(job.bucket, job.key) not in (None, job.job_id):
        return 0  # a newer upload renders the key's outputs
    lease = store.lease_output(job.bucket, job.key, job.job_id, now, RENDER_LEASE_SECONDS)
    if lease is Lease.SUPERSEDED:
        return 0
    if lease is Lease.BUSY:
        raise RuntimeError(f"another job is writing the outputs of {job.key}")  # the next pass tries again
    try:
        profile = _profile(request, job, services)
        relative = relative_key(job.key, settings.input_prefix)
        reported = 0
        for spec in profile.outputs:
            key = output_key(settings.output_prefix, relative, spec)
            report_key = output_report_key(job.key, settings.input_prefix, settings.failure_prefix, spec.name)
            if not fits_s3_key(report_key) or not fits_s3_key(key):
                continue  # the render function reported (or logged) this output's key already
            if cutout_owner(services.s3, job.bucket, key) == job.job_id:
                continue  # written: this output is not lost
            reason = OUTPUT_REASON
            report = FailureReport(
                source_bucket=job.bucket,
                source_key=job.key,
                source_version=job.version,
                job_id=job.job_id,
                reason=reason,
                message=f'output "{spec.name}" of profile "{profile.name}" was never written: its render '
                "request failed on every delivery and was dead-lettered",
                what_to_do=advice_for(reason),
                request_id=job.request_id,
            )
            write_failure_report(services.s3, job.bucket, report_key, report)
            services.metrics.failure(reason)
            reported += 1
        return reported
    finally:
        store.release_output(job.bucket, job.key, job.job_id)


def _profile(request: RenderRequest, job: Job, services: Services) -> Profile:
    """The profile the render function would have used (derived_outputs._profile)."""
    profiles = services.profiles
    if profiles is not None and request.profile and request.profile in profiles.profiles:
        return profiles.profiles[request.profile]  # type: ignore[no-any-return]
    return job_profile(job, services) or Profiles.default().profiles["default"]
