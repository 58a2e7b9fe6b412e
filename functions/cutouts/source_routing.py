"""Before paying: which profile an upload gets, and whether the gateway can take it as it is.

One ranged GET of the upload's first bytes answers both: its user metadata may name a profile
(``x-amz-meta-cutouts-profile``; an undeclared name is reported before anything is paid), and its
header says whether it needs normalising (``normalising.needs_normalising``: no Pillow, a few byte
comparisons). An upload that does is sent to the render function (``prepare``), which has the
memory and the image library; it hands the upload back once a normalised copy exists, and this
module then points the job at that copy (``submit_key``), which is what gets presigned.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts.image_sniff import HEAD_BYTES, media_type_of
from cutouts.job_store import Job
from cutouts.keys import relative_key
from cutouts.masters import normalised_key
from cutouts.notifications import SourceObject
from cutouts.outcomes import Outcome, fail_new_job
from cutouts.profiles import PROFILE_METADATA_KEY, UnknownProfile
from cutouts.render_requests import PREPARE, RenderRequest, send_request
from cutouts.s3_objects import GONE, head_or_none
from cutouts.services import Services


class Routed(NamedTuple):
    result: Outcome
    detail: str


def route_upload(job: Job, source: SourceObject, services: Services, now: float) -> Routed | None:
    """None: submit as usual (``job.profile`` and maybe ``job.submit_key`` set); else what happened instead."""
    if services.profiles is None:
        return None
    settings = services.settings
    head = _head(services.s3, job)
    if head is None:
        return None  # gone: check_source reports it as always
    data, metadata = head
    try:
        profile = services.profiles.choose(
            relative_key(job.key, settings.input_prefix), metadata.get(PROFILE_METADATA_KEY)
        )
    except UnknownProfile as exc:
        ended = fail_new_job(job, services, now, reason="unknown-profile", message=str(exc))
        if ended:
            return Routed(Outcome.FAILED, "unknown-profile")
        return Routed(Outcome.DUPLICATE, "this object version was already handled")
    job.profile = profile.name
    if not _needs_preparing(data, settings):
        return None
    copy = normalised_key(job.job_id, settings.work_prefix)
    existing = head_or_none(services.s3, job.bucket, copy)
    if existing is not None and existing.get("Metadata", {}).get("job-id") == job.job_id:
        job.submit_key = copy
        return None
    request = RenderRequest(
        PREPARE,
        job.bucket,
        job.key,
        job.job_id,
        profile.name,
        version_id=job.version_id,
        etag=job.etag,
        sequencer=source.sequencer,
    )
    send_request(services.sqs, settings.render_queue_url, request)
    return Routed(Outcome.DEFERRED, "sent to be prepared (normalised, or already cut out)")


def _needs_preparing(head: bytes, settings: Any) -> bool:
    """An image the gateway cannot take as uploaded; anything that is no image goes on to be reported."""
    from cutouts.normalising import needs_normalising

    if media_type_of(head) is None:
        return False  # not an image at all: check_source reports it (unsupported-type), nothing to prepare
    return needs_normalising(head, settings.max_image_pixels if settings.oversize == "downscale" else None)


def _head(s3: Any, job: Job) -> tuple[bytes, dict[str, str]] | None:
    params: dict[str, Any] = {"Bucket": job.bucket, "Key": job.key, "Range": f"bytes=0-{HEAD_BYTES - 1}"}
    if job.version_id:
        params["VersionId"] = job.version_id
    try:
        reply = s3.get_object(**params)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in GONE or code == "InvalidRange":
            return None
        raise
    body = reply["Body"]
    try:
        return bytes(body.read()), dict(reply.get("Metadata") or {})
    finally:
        body.close()
