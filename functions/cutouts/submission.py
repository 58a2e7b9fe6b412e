"""Submitting a source image to the gateway: at most one accepted request per object version.

The window between the gateway's 202 and our job write cannot be closed with the gateway's
help (its API has no idempotency key). We close it from our side: the job is claimed before
the POST (a conditional write on a deterministic id, with a lease); a POST that got no answer,
or a claim whose lease ran out, parks the job IN_DOUBT instead of resubmitting. The callback
URL names the job and attempt, so if the gateway did accept, its callback adopts the request.
Only after a grace period with no callback does the reconciler resubmit.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from cutouts import constants as c
from cutouts.content_cache import reuse_cutout
from cutouts.gateway import GatewayInDoubt, GatewayPermanentError, GatewayTransientError
from cutouts.image_sniff import RejectedImage
from cutouts.job_store import RETRY, SUBMITTING, SUPERSEDED, Job
from cutouts.keys import decode_event_key, job_id_for, job_version, padded_sequencer
from cutouts.outcomes import GATEWAY_ALARM_METRICS, fail_job
from cutouts.services import Services
from cutouts.source_reader import SourceGone, SourceReplaced, read_source

CLAIM_LEASE_SECONDS = 120.0


class RetryLater(Exception):
    """This record should come back through the queue, after ``retry_after`` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceObject(NamedTuple):
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    sequencer: str | None

    @property
    def version(self) -> str:
        return job_version(self.version_id, self.etag)

    @property
    def job_id(self) -> str:
        return job_id_for(self.bucket, self.key, self.version)

    def new_job(self, etag: str | None = None) -> Job:
        return Job(
            job_id=self.job_id,
            bucket=self.bucket,
            key=self.key,
            version=self.version,
            status="",
            version_id=self.version_id,
            etag=(self.etag or etag or "").strip('"') or None,
        )


class SubmitOutcome(NamedTuple):
    result: str  # submitted | duplicate | superseded | failed | in-doubt | ignored | cached
    job_id: str | None = None
    detail: str = ""


def source_from_s3_record(record: dict[str, Any]) -> SourceObject:
    """One record of an S3 event notification (the key is URL-encoded there)."""
    s3 = record["s3"]
    obj = s3["object"]
    return SourceObject(
        bucket=s3["bucket"]["name"],
        key=decode_event_key(obj["key"]),
        version_id=obj.get("versionId") or None,
        etag=obj.get("eTag") or None,
        sequencer=obj.get("sequencer") or None,
    )


def sources_in_notification(body: str) -> list[SourceObject]:
    """The uploads an S3 notification message names; none for a test event or anything malformed."""
    try:
        records = json.loads(body).get("Records", [])
    except (ValueError, AttributeError):
        return []
    sources = []
    for record in records if isinstance(records, list) else []:
        try:
            sources.append(source_from_s3_record(record))
        except (KeyError, TypeError):
            continue
    return sources


def submit_source(source: SourceObject, services: Services, now: float, final_delivery: bool = False) -> SubmitOutcome:
    settings = services.settings
    if not source.key.startswith(settings.input_prefix):
        return SubmitOutcome("ignored", detail="outside the input prefix")
    job = source.new_job()
    if source.sequencer:
        previous = services.store.note_newest(
            source.bucket, source.key, padded_sequencer(source.sequencer), job.job_id, now
        )
        if previous is None:
            return SubmitOutcome("superseded", job.job_id, "a newer upload of this key was already seen")
        older = previous.get("job_id")
        if older and older != job.job_id:
            services.store.tell_superseded(older, job.job_id, now)
        job.clear_report = bool(previous.get("has_report")) or None
    else:
        job.clear_report = True  # no ordering information: a success removes any report of the key

    if not services.store.claim(job, now, CLAIM_LEASE_SECONDS):
        services.metrics.count(c.METRIC_DUPLICATES_SKIPPED)
        return SubmitOutcome("duplicate", job.job_id, "this object version is already being handled")
    job.status = SUBMITTING

    try:
        read = read_source(
            services.s3,
            source.bucket,
            source.key,
            source.version_id,
            source.etag,
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            with_hash=settings.dedup_enabled,
        )
    except RejectedImage as exc:
        fail_job(job, services, now, reason=exc.reason, message=exc.message)
        return SubmitOutcome("failed", job.job_id, exc.reason)
    except SourceGone:
        fail_job(job, services, now, reason="source-deleted", message="the object was deleted before it was processed")
        return SubmitOutcome("failed", job.job_id, "source-deleted")
    except SourceReplaced:
        services.store.mark_final(job, SUPERSEDED, now, "superseded", "the object was overwritten after this event")
        return SubmitOutcome("superseded", job.job_id, "the object was overwritten after this event")
    if read.content_hash is not None:
        cached = reuse_cutout(job, read.content_hash, services, now)
        if cached is not None:
            return SubmitOutcome(cached.result, job.job_id, cached.detail)

    return send_to_gateway(job, services, now, on_transient=RETRY, final_delivery=final_delivery)


def send_to_gateway(
    job: Job, services: Services, now: float, *, on_transient: str, final_delivery: bool
) -> SubmitOutcome:
    """POST a claimed (SUBMITTING) job to the gateway and record what it answered."""
    settings = services.settings
    image_url = presign_source(services.s3, job, settings.presign_expiry_seconds)
    webhook_url = services.signer.callback_url(settings.callback_base_url, job.job_id, job.attempt)
    try:
        submission = services.gateway.submit(image_url, webhook_url)
    except GatewayPermanentError as exc:
        if exc.reason in GATEWAY_ALARM_METRICS:
            services.metrics.count(GATEWAY_ALARM_METRICS[exc.reason])
        fail_job(
            job,
            services,
            now,
            reason=exc.reason,
            message=exc.message,
            what_to_do=exc.what_to_do,
            gateway_error=exc.gateway_error,
            http_status=exc.http_status,
        )
        return SubmitOutcome("failed", job.job_id, exc.reason)
    except GatewayInDoubt as exc:
        services.store.mark_in_doubt(job.job_id, job.attempt, now, exc.message)
        return SubmitOutcome("in-doubt", job.job_id, exc.message)
    except GatewayTransientError as exc:
        if final_delivery:
            fail_job(
                job,
                services,
                now,
                reason="gateway-gave-up",
                message=exc.message,
                gateway_error=exc.gateway_error,
                http_status=exc.http_status,
            )
            return SubmitOutcome("failed", job.job_id, "gateway-gave-up")
        services.store.release(job.job_id, job.attempt, now, exc.message, to_status=on_transient)
        raise RetryLater(exc.message, exc.retry_after) from None
    services.store.mark_submitted(job.job_id, job.attempt, submission.request_id, now, job.content_hash)
    services.metrics.count(c.METRIC_SUBMITTED)
    return SubmitOutcome("submitted", job.job_id, submission.request_id)


def presign_source(s3: Any, job: Job, expiry_seconds: int) -> str:
    """A SigV4 GET URL for the exact version we recorded (the client is regional, see runtime)."""
    params: dict[str, str] = {"Bucket": job.bucket, "Key": job.key}
    if job.version_id:
        params["VersionId"] = job.version_id
    return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expiry_seconds))
