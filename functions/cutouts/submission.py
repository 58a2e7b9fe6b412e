"""Submitting a source image to the gateway: at most one accepted request per object version.

The window between the gateway's 202 and our job write cannot be closed with the gateway's
help (its API has no idempotency key). We close it from our side: the job is claimed before
the POST (a conditional write on a deterministic id, with a lease); a POST that got no answer,
or a claim whose lease ran out, parks the job IN_DOUBT instead of resubmitting. The callback
URL names the job and attempt, so if the gateway did accept, its callback adopts the request.
Only after a grace period with no callback does the reconciler resubmit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cutouts import constants as c
from cutouts.content_cache import SourceVanished, read_head_tail_and_hash, reuse_cutout
from cutouts.gateway import GatewayInDoubt, GatewayPermanentError, GatewayTransientError
from cutouts.image_sniff import HEAD_BYTES, TAIL_BYTES, RejectedImage, sniff_image
from cutouts.job_store import RETRY, Job
from cutouts.keys import decode_event_key, job_id_for, padded_sequencer
from cutouts.outcomes import GATEWAY_ALARM_METRICS, fail_job, fail_new_job
from cutouts.services import Services

CLAIM_LEASE_SECONDS = 120.0


class RetryLater(Exception):
    """This record should come back through the queue, after ``retry_after`` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SourceObject:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    sequencer: str | None

    @property
    def version(self) -> str:
        return self.version_id or (self.etag or "").strip('"') or "unversioned"

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


@dataclass(frozen=True)
class SubmitOutcome:
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


def submit_source(source: SourceObject, services: Services, now: float, final_delivery: bool = False) -> SubmitOutcome:
    settings = services.settings
    if not source.key.startswith(settings.input_prefix):
        return SubmitOutcome("ignored", detail="outside the input prefix")
    job_id = source.job_id
    if source.sequencer and not services.store.record_latest(
        source.bucket, source.key, padded_sequencer(source.sequencer), job_id, now
    ):
        return SubmitOutcome("superseded", job_id, "a newer upload of this key was already seen")

    head = _head_current(services.s3, source)
    if head is None:
        fail_new_job(source.new_job(), services, now, reason="source-deleted", message="the object no longer exists")
        return SubmitOutcome("failed", job_id, "source-deleted")
    if _is_newer_than(head, source):
        return SubmitOutcome("superseded", job_id, "the object was overwritten after this event")

    job = source.new_job(head.get("ETag"))
    if not services.store.claim(job, now, CLAIM_LEASE_SECONDS):
        services.metrics.count(c.METRIC_DUPLICATES_SKIPPED)
        return SubmitOutcome("duplicate", job_id, "this object version is already being handled")
    job.status = "SUBMITTING"

    try:
        digest = _check_image(services, source, int(head.get("ContentLength", 0)), settings.dedup_enabled)
    except RejectedImage as exc:
        fail_job(job, services, now, reason=exc.reason, message=exc.message)
        return SubmitOutcome("failed", job_id, exc.reason)
    except (_SourceGone, SourceVanished):
        fail_job(job, services, now, reason="source-deleted", message="the object was deleted while in the queue")
        return SubmitOutcome("failed", job_id, "source-deleted")

    if digest is not None:
        cached = reuse_cutout(job, digest, services, now)
        if cached is not None:
            return SubmitOutcome(cached.result, job_id, cached.detail)

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


class _SourceGone(Exception):
    pass


def _head_current(s3: Any, source: SourceObject) -> dict[str, Any] | None:
    """The key's current object: None if it was deleted (with versioning: a delete marker)."""
    try:
        return dict(s3.head_object(Bucket=source.bucket, Key=source.key))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchVersion", "405"):
            return None
        raise


def _is_newer_than(head: dict[str, Any], source: SourceObject) -> bool:
    """The key now holds another version than the event's: that upload's own event will handle it."""
    if source.version_id:
        return bool(head.get("VersionId")) and head.get("VersionId") != source.version_id
    return bool(source.etag) and head.get("ETag", "").strip('"') != (source.etag or "").strip('"')


def _check_image(services: Services, source: SourceObject, size: int, with_hash: bool) -> str | None:
    """Sniff the image from its head and tail; with ``with_hash``, read it whole once and hash it.

    Returns the SHA-256 for content de-duplication (one GET instead of two ranged GETs and a
    hashing GET), or None without it.
    """
    settings = services.settings
    if size == 0 or size > settings.max_image_bytes:
        sniff_image(b"", b"", size, settings.max_image_bytes, settings.max_image_pixels)
    digest = None
    if with_hash:
        head, tail, digest = read_head_tail_and_hash(
            services.s3, source.bucket, source.key, source.version_id, HEAD_BYTES, TAIL_BYTES
        )
    else:
        head = _read_range(services.s3, source, f"bytes=0-{HEAD_BYTES - 1}")
        tail = head if size <= HEAD_BYTES else _read_range(services.s3, source, f"bytes=-{TAIL_BYTES}")
    sniff_image(head, tail, size, settings.max_image_bytes, settings.max_image_pixels)
    return digest


def _read_range(s3: Any, source: SourceObject, byte_range: str) -> bytes:
    params = {"Bucket": source.bucket, "Key": source.key, "Range": byte_range}
    if source.version_id:
        params["VersionId"] = source.version_id
    try:
        return bytes(s3.get_object(**params)["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchVersion"):
            raise _SourceGone() from None
        raise
