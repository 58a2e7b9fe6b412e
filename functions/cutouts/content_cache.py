"""Content de-duplication: identical bytes share one gateway call.

The S3 ETag is not a content hash (multipart uploads, SSE-KMS), so the submit function hashes the
source in the same read that checks it is an image (source_reader) and records the SHA-256 on the
job with its submission or completion. A COMPLETED job with the same hash whose
cutout is still the one it produced (the cutout's ``job-id`` metadata names it) lends that cutout:
it is copied server-side to this job's output key, and the job ends COMPLETED ``from_cache``.

Identical images uploaded together are handled by single_flight: one of them pays, the others
wait for its cutout and copy it through ``copy_cutout_from``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts import constants as c
from cutouts.job_store import COMPLETED, SUPERSEDED, Job, Lease
from cutouts.keys import cutout_metadata, failure_key_for, output_key_for
from cutouts.leases import output_lease_seconds
from cutouts.outcomes import Outcome, OutputBusy
from cutouts.reports import remove_failure_report
from cutouts.s3_objects import head_or_none
from cutouts.services import Services

_CHANGED = ("PreconditionFailed", "412", "404", "NoSuchKey")


class CacheResult(NamedTuple):
    result: Outcome
    detail: str


def reuse_cutout(job: Job, digest: str, services: Services, now: float) -> CacheResult | None:
    """Finish a job from an identical source's cutout; None if there is none to copy."""
    job.content_hash = digest
    for twin in services.store.completed_with_content(digest):
        if twin.job_id == job.job_id or not twin.output_key:
            continue
        copied = copy_cutout_from(job, twin, services, now)
        if copied is not None:
            return copied
    return None


def copy_cutout_from(job: Job, twin: Job, services: Services, now: float) -> CacheResult | None:
    """Copy a COMPLETED twin's cutout to this job's output key; None if the twin's cutout changed.

    The job needs no claim (a copy costs nothing at the gateway): it is created, or ended from
    RETRY or WAITING, as COMPLETED ``from_cache``.
    """
    store = services.store
    etag = _cutout_etag(services.s3, twin)
    if etag is None:
        return None  # deleted, or overwritten by a newer version of the twin's key
    lease = store.lease_output(job.bucket, job.key, job.job_id, now, output_lease_seconds(services.settings))
    if lease is Lease.SUPERSEDED:
        store.mark_final(job, SUPERSEDED, now, "superseded", "a newer version of the key was uploaded")
        return CacheResult(Outcome.SUPERSEDED, "a newer upload of this key was already seen")
    if lease is Lease.BUSY:
        raise OutputBusy(f"another job is writing the outputs of {job.key}")
    try:
        return _copy(job, twin, etag, services, now)
    finally:
        store.release_output(job.bucket, job.key, job.job_id)


def _copy(job: Job, twin: Job, etag: str, services: Services, now: float) -> CacheResult | None:
    """Under the key's output lease: copy, end the job, clear the key's report (or take the copy back)."""
    settings = services.settings
    output_key = output_key_for(job.key, settings.input_prefix, settings.output_prefix)
    metadata = cutout_metadata(job.key, job.version, job.job_id, twin.request_id or "")
    metadata["cached-from"] = twin.job_id
    try:
        services.s3.copy_object(
            Bucket=job.bucket,
            Key=output_key,
            CopySource={"Bucket": twin.bucket, "Key": twin.output_key},
            CopySourceIfMatch=etag,
            MetadataDirective="REPLACE",
            ContentType=services.media_policy.expected.content_type,
            Metadata=metadata,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _CHANGED:
            return None  # the twin's cutout changed between the check and the copy
        raise
    if not services.store.mark_completed(job, now, output_key, from_cache=True):
        current = services.store.get(job.job_id)
        if current is None or current.status != COMPLETED:
            services.s3.delete_object(Bucket=job.bucket, Key=output_key)  # ours, and wrong: take it back
        return CacheResult(Outcome.ALREADY_FINISHED, "the job ended while its cutout was being copied")
    remove_failure_report(
        services.s3, job.bucket, failure_key_for(job.key, settings.input_prefix, settings.failure_prefix)
    )
    services.metrics.count(c.METRIC_GATEWAY_CALLS_SAVED)
    services.metrics.count(c.METRIC_COMPLETED)
    if job.created_at:
        services.metrics.seconds(c.METRIC_END_TO_END_SECONDS, max(0.0, now - job.created_at))
    return CacheResult(Outcome.CACHED, f"copied the cutout of job {twin.job_id}")


def _cutout_etag(s3: Any, twin: Job) -> str | None:
    """The ETag of the twin's cutout if it is still the twin's own result."""
    head = head_or_none(s3, twin.bucket, twin.output_key or "")
    if head is None or head.get("Metadata", {}).get("job-id") != twin.job_id:
        return None
    return str(head["ETag"])
