"""Submitting a source image to the gateway: at most one accepted request per object version.

The window between the gateway's 202 and our job write cannot be closed with the gateway's
help (its API has no idempotency key). We close it from our side: everything that can fail
without costing money (the key record, reading and checking the source, the content checks)
happens first, with no claim held, so a failure there simply goes back to the queue. Only then
is the job claimed (a conditional write on a deterministic id, with a lease), and the POST
follows at once: SUBMITTING therefore means "a POST may have left". A POST that got no answer,
or a claim whose lease ran out, parks the job IN_DOUBT instead of resubmitting. The callback
URL names the job and attempt, so if the gateway did accept, its callback adopts the request.
Only after a grace period with no callback does the reconciler resubmit, and it too reads the
source again first (``check_source``): nothing is paid for without a fresh check.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cutouts import constants as c
from cutouts.content_cache import reuse_cutout
from cutouts.gateway import GatewayInDoubt, GatewayPermanentError, GatewayTransientError
from cutouts.image_sniff import RejectedImage
from cutouts.job_outputs import job_profile, renders
from cutouts.job_store import COMPLETED, RETRY, SUPERSEDED, Job, Lease
from cutouts.keys import (
    MAX_METADATA_BYTES,
    cutout_metadata,
    failure_key_for,
    fits_s3_key,
    is_folder_marker,
    metadata_bytes,
    output_key_for,
    padded_sequencer,
)
from cutouts.leases import claim_lease_seconds, output_lease_seconds
from cutouts.notifications import SourceObject
from cutouts.observability import logger
from cutouts.outcomes import GATEWAY_ALARM_METRICS, Outcome, fail_job, fail_new_job
from cutouts.reports import cutout_owner, remove_failure_report
from cutouts.services import Services
from cutouts.single_flight import wait_or_pay
from cutouts.source_reader import SourceBytes, SourceGone, SourceReplaced, read_source
from cutouts.source_routing import route_upload
from cutouts.spend_guard import BUDGET_REASONS, announce_parked, give_back, parked_because, reserve, upload_loop
from cutouts.spend_records import Reserved


class RetryLater(Exception):
    """This record should come back through the queue, after ``retry_after`` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SubmitOutcome(NamedTuple):
    result: Outcome
    job_id: str | None = None
    detail: str = ""


def unwritable_outputs(job: Job, services: Services) -> str | None:
    """Why S3 would refuse this job's cutout (its key, or its metadata), or None if it fits."""
    settings = services.settings
    output_key = output_key_for(job.key, settings.input_prefix, settings.output_prefix)
    if not fits_s3_key(output_key):
        return (
            f"the cutout's key would be {len(output_key.encode())} bytes; S3 allows 1024: "
            "shorten the source key (its folder names or file name)"
        )
    if metadata_bytes(cutout_metadata(job.key, job.version, job.job_id, "r" * 128)) > MAX_METADATA_BYTES:
        return "the cutout's metadata would exceed S3's 2 KB limit: shorten the source key"
    return None


def submit_source(source: SourceObject, services: Services, now: float, final_delivery: bool = False) -> SubmitOutcome:
    settings = services.settings
    if not source.key.startswith(settings.input_prefix):
        return SubmitOutcome(Outcome.IGNORED, detail="outside the input prefix")
    if is_folder_marker(source.key):
        return SubmitOutcome(Outcome.IGNORED, detail="a folder marker, not an upload")
    job = source.new_job()
    if source.sequencer:
        previous = services.store.note_newest(
            source.bucket, source.key, padded_sequencer(source.sequencer), job.job_id, now
        )
        if previous is None:
            if services.store.latest_job_for(source.bucket, source.key) == job.job_id:
                # A late event of bytes the key holds again (unversioned: one job for both uploads)
                return SubmitOutcome(Outcome.DUPLICATE, job.job_id, "an older event of the key's current job")
            _end_if_open(job, services, now)  # e.g. a redrive of a version that is no longer current
            return SubmitOutcome(Outcome.SUPERSEDED, job.job_id, "a newer upload of this key was already seen")
        older = previous.job_id
        if older and older != job.job_id:
            services.store.tell_superseded(older, job.job_id, now)

    looping = upload_loop(job, services, now)
    if looping is not None:
        services.metrics.count(c.METRIC_UPLOAD_LOOPS)
        return _ended(fail_new_job(job, services, now, reason="upload-loop", message=looping), job, "upload-loop")
    unfit = unwritable_outputs(job, services)
    if unfit is not None:
        return _ended(fail_new_job(job, services, now, reason="key-too-long", message=unfit), job, "key-too-long")
    routed = route_upload(job, source, services, now)  # output profile; normalising first if needed
    if routed is not None:
        return SubmitOutcome(routed.result, job.job_id, routed.detail)
    checked = check_source(job, services, now)
    if isinstance(checked, SubmitOutcome):
        return checked
    # De-duplication copies a twin's PNG cutout: only for jobs whose profile is that cutout alone.
    if checked.content_hash is not None and not renders(job_profile(job, services)):
        cached = reuse_cutout(job, checked.content_hash, services, now)
        if cached is not None:
            return SubmitOutcome(cached.result, job.job_id, cached.detail)
        waited = wait_or_pay(job, services, now)
        if waited is not None:
            return SubmitOutcome(waited.result, job.job_id, waited.detail)

    if source.sequencer and services.store.latest_job_for(job.bucket, job.key) not in (None, job.job_id):
        _end_if_open(job, services, now)  # a newer upload arrived while this one was being read
        return SubmitOutcome(Outcome.SUPERSEDED, job.job_id, "a newer upload of this key arrived meanwhile")
    if not services.store.claim(job, now, claim_lease_seconds(services.settings)):
        if source.sequencer and _reverted(job, services, now):
            return submit_source(source, services, now, final_delivery)  # reopened: once more, as new
        services.metrics.count(c.METRIC_DUPLICATES_SKIPPED)
        return SubmitOutcome(Outcome.DUPLICATE, job.job_id, "this object version is already being handled")
    return send_to_gateway(job, services, now, on_transient=RETRY, final_delivery=final_delivery)


def _reverted(job: Job, services: Services, now: float) -> bool:
    """A key re-uploaded with bytes it held before a newer upload (same ETag, so the same job).

    Without versioning the job id cannot tell the two uploads apart, but the key record can: it
    names this job as the newest again. A job still in flight simply stops counting as
    superseded; a finished one is reopened (True: submit it again), since the newer upload's
    output replaced its own.
    """
    existing = services.store.get(job.job_id)
    if existing is None or not (existing.superseded_by or existing.status == SUPERSEDED):
        return False
    if services.store.latest_job_for(job.bucket, job.key) != job.job_id:
        return False
    if not existing.is_final:
        services.store.reinstate(existing, now)
        return False
    output_key = output_key_for(job.key, services.settings.input_prefix, services.settings.output_prefix)
    if existing.status == COMPLETED and cutout_owner(services.s3, job.bucket, output_key) == job.job_id:
        _clear_report(existing, services, now)  # its own cutout still stands: only a newer report is stale
        return False
    return services.store.reopen(existing, now)


def _clear_report(job: Job, services: Services, now: float) -> None:
    """Remove the key's report, as the key's newest job under its output lease."""
    settings = services.settings
    if services.store.lease_output(job.bucket, job.key, job.job_id, now, output_lease_seconds(settings)) is Lease.OK:
        try:
            report_key = failure_key_for(job.key, settings.input_prefix, settings.failure_prefix)
            remove_failure_report(services.s3, job.bucket, report_key)
        finally:
            services.store.release_output(job.bucket, job.key, job.job_id)


def _end_if_open(job: Job, services: Services, now: float) -> None:
    """A version that will never be submitted must not sit open until it times out."""
    existing = services.store.get(job.job_id)
    if existing is not None and not existing.is_final:
        services.store.mark_final(existing, SUPERSEDED, now, "superseded", "a newer version of the key was uploaded")


def check_source(job: Job, services: Services, now: float, *, stored: bool = False) -> SourceBytes | SubmitOutcome:
    """Read the source once more before paying: still there, still this version, an image within the caps.

    A rejection ends the job with a report: ``stored`` says the job record exists in
    ``job.status``; otherwise a record is created to hold the outcome. Errors S3 or DynamoDB
    raise here propagate: nothing has been paid, so the queue (or the reconciler's next pass)
    simply tries again.
    """
    settings = services.settings
    try:
        # A normalised copy (work prefix) is what the gateway gets, so it is what is checked.
        return read_source(
            services.s3,
            job.bucket,
            job.submit_key or job.key,
            None if job.submit_key else job.version_id,
            None if job.submit_key else job.etag,
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            with_hash=settings.dedup_enabled,
        )
    except RejectedImage as exc:
        reason, message = exc.reason, exc.message
    except SourceGone:
        reason, message = "source-deleted", "the object was deleted before it was processed"
    except SourceReplaced:
        text = "the object was overwritten after this event"
        if stored or services.store.claim(job, now, claim_lease_seconds(services.settings)):
            services.store.mark_final(job, SUPERSEDED, now, "superseded", text)
        return SubmitOutcome(Outcome.SUPERSEDED, job.job_id, text)
    if stored:
        ended = fail_job(job, services, now, reason=reason, message=message)
    else:
        ended = fail_new_job(job, services, now, reason=reason, message=message)
    return _ended(ended, job, reason)


def _ended(ended: bool, job: Job, reason: str) -> SubmitOutcome:
    if ended:
        return SubmitOutcome(Outcome.FAILED, job.job_id, reason)
    return SubmitOutcome(Outcome.DUPLICATE, job.job_id, "this object version was already handled")


def send_to_gateway(
    job: Job, services: Services, now: float, *, on_transient: str, final_delivery: bool
) -> SubmitOutcome:
    """POST a claimed (SUBMITTING) job to the gateway and record what it answered.

    The POST's price is reserved first (spend_guard): with no room in the budget the job is
    parked instead, unsent. A POST the gateway refused gives its reservation back; one in doubt
    keeps it, since it may have been billed.
    """
    settings = services.settings
    try:
        image_url = presign_source(services.s3, job, settings.presign_expiry_seconds)
        webhook_url = services.signer.callback_url(settings.callback_base_url, job.job_id, job.attempt)
    except Exception:
        # Nothing has left yet: hand the job back rather than leave a claim that looks in doubt.
        services.store.release(job.job_id, job.attempt, now, "could not prepare the request", to_status=on_transient)
        raise
    try:
        reserved = reserve(job, services, now)
    except Exception:
        services.store.release(job.job_id, job.attempt, now, "could not reserve the spend", to_status=on_transient)
        raise
    if reserved in BUDGET_REASONS:
        return park(job, services, now, reserved)
    try:
        submission = services.gateway.submit(image_url, webhook_url)
    except GatewayPermanentError as exc:
        _give_back(job, services, now)
        if exc.reason in GATEWAY_ALARM_METRICS:
            services.metrics.count(GATEWAY_ALARM_METRICS[exc.reason])
        return _refused(job, services, now, exc, exc.what_to_do)
    except GatewayInDoubt as exc:
        services.store.mark_in_doubt(job.job_id, job.attempt, now, exc.message)
        return SubmitOutcome(Outcome.IN_DOUBT, job.job_id, exc.message)
    except GatewayTransientError as exc:
        _give_back(job, services, now)
        if final_delivery:
            return _refused(job, services, now, exc)
        services.store.release(job.job_id, job.attempt, now, exc.message, to_status=on_transient)
        raise RetryLater(exc.message, exc.retry_after) from None
    # The request is ours: bind it to this job before recording it, so no callback can adopt it elsewhere.
    services.store.bind_request(submission.request_id, job.job_id, now)
    services.store.mark_submitted(job.job_id, job.attempt, submission.request_id, now, job.content_hash)
    services.metrics.count(c.METRIC_SUBMITTED)
    return SubmitOutcome(Outcome.SUBMITTED, job.job_id, submission.request_id)


def park(job: Job, services: Services, now: float, refusal: Reserved) -> SubmitOutcome:
    """The budget has no room: the job waits, unsent and unpaid, and its record says which budget.

    The queue's message is consumed: the job record holds everything needed to send it later,
    which the reconciler does, oldest first, when the next UTC day (or month) opens.
    """
    if not services.store.park(job.job_id, job.attempt, now, str(refusal), parked_because(refusal)):
        return SubmitOutcome(Outcome.DUPLICATE, job.job_id, "this attempt moved on before it could be parked")
    services.metrics.count(c.METRIC_JOBS_PARKED)
    announce_parked(job, services, now, refusal)
    return SubmitOutcome(Outcome.PARKED, job.job_id, str(refusal))


def _give_back(job: Job, services: Services, now: float) -> None:
    """Return a refused POST's reservation; if DynamoDB fails here the budget is merely lower, never passed."""
    try:
        give_back(job.job_id, job.attempt, services, now)
    except Exception:
        logger.exception("could not give back a refused POST's reservation", job_id=job.job_id)


def _refused(
    job: Job,
    services: Services,
    now: float,
    exc: GatewayPermanentError | GatewayTransientError,
    advice: str | None = None,
) -> SubmitOutcome:
    """The gateway refused the POST for good (or for the last time): report it with its own words."""
    fail_job(
        job,
        services,
        now,
        reason=exc.reason,
        message=exc.message,
        what_to_do=advice,
        gateway_error=exc.gateway_error,
        http_status=exc.http_status,
    )
    return SubmitOutcome(Outcome.FAILED, job.job_id, exc.reason)


def presign_source(s3: Any, job: Job, expiry_seconds: int) -> str:
    """A SigV4 GET URL for the exact version we recorded (the client is regional, see runtime)."""
    if job.submit_key:  # the normalised copy (one per job version, never overwritten)
        return str(
            s3.generate_presigned_url(
                "get_object", Params={"Bucket": job.bucket, "Key": job.submit_key}, ExpiresIn=expiry_seconds
            )
        )
    params: dict[str, str] = {"Bucket": job.bucket, "Key": job.key}
    if job.version_id:
        params["VersionId"] = job.version_id
    return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expiry_seconds))
