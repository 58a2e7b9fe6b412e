"""The render function's use cases: derive a job's outputs from its master; prepare an upload.

Rendering never calls the gateway: it reads the master (the paid result, kept under the work
prefix) and writes every output of the job's profile, under the key's output lease, so only the
key's newest job writes and one writer at a time. A failing output gets its own report
(``<failure><relative>.<name>.json``) and the others are still written. Anything transient (the
job not completed yet, the lease busy, an AWS error) raises, and the queue delivers the request
again: a retry costs rendering time, never a gateway charge. Writing the same outputs twice
gives the same objects, so a redelivery is harmless.

Pillow is imported only here, inside the use cases (``cutouts.rendering``, ``cutouts.normalising``):
the render function is the one that carries the image layer and the memory for it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts import constants as c
from cutouts.job_outputs import job_profile
from cutouts.job_store import COMPLETED, Job, Lease
from cutouts.keys import cutout_metadata, failure_key_for, fits_s3_key, job_version, relative_key
from cutouts.masters import master_key, normalised_key, output_report_key
from cutouts.notifications import upload_notification
from cutouts.observability import logger
from cutouts.outcomes import fail_new_job
from cutouts.profiles import PROFILE_METADATA_KEY, Profile, output_key
from cutouts.render_events import announce_render, drop_render_event
from cutouts.render_requests import RENDER, RenderRequest
from cutouts.reports import FailureReport, advice_for, remove_failure_report, write_failure_report
from cutouts.s3_objects import GONE
from cutouts.services import Services

# How long a render may hold the key's outputs: the render function's time-out, with room.
RENDER_LEASE_SECONDS = 330.0
OUTPUT_METADATA_NAME = "cutouts-output"


class RetryRender(Exception):
    """Not now (the job is still finishing, another writer holds the key): the queue tries again."""


class RenderResult(NamedTuple):
    written: tuple[str, ...] = ()  # output keys written
    failed: tuple[str, ...] = ()  # names of the outputs that got a report
    skipped: str = ""  # why nothing was done (superseded, no master, ...), or ""


def render_job(request: RenderRequest, services: Services, now: float) -> RenderResult:
    """Write every output of the job's profile from its master (see the module docstring)."""
    store, settings = services.store, services.settings
    job = store.get(request.job_id)
    if job is None:
        return RenderResult(skipped="no such job")
    if job.status != COMPLETED:
        if job.is_final:
            return RenderResult(skipped=f"the job ended {job.status}, not completed")
        raise RetryRender("the job has not completed yet")
    profile = _profile(request, job, services)
    lease = store.lease_output(job.bucket, job.key, job.job_id, now, RENDER_LEASE_SECONDS)
    if lease is Lease.SUPERSEDED:
        # Its outputs will never be written: like a SUPERSEDED end, it is not announced (the newer
        # upload's job announces the key's outputs), so its pending end is let go.
        drop_render_event(job, services, now)
        return RenderResult(skipped="a newer upload of the key owns its outputs")
    if lease is Lease.BUSY:
        raise RetryRender("another job is writing the key's outputs")
    try:
        master = _read(services.s3, job.bucket, master_key(job.key, settings.input_prefix, settings.work_prefix))
        if master is None:
            return RenderResult(skipped="the key has no master (deleted?)")
        result = _write_outputs(job, profile, master, services)
    finally:
        store.release_output(job.bucket, job.key, job.job_id)
    # The job's one Cutout Created, now that its outputs exist (only if its end is still pending).
    announce_render(job, profile, result.written, result.failed, services)
    return result


def _profile(request: RenderRequest, job: Job, services: Services) -> Profile:
    profiles = services.profiles
    if profiles is not None and request.profile and request.profile in profiles.profiles:
        return profiles.profiles[request.profile]  # type: ignore[no-any-return]
    chosen = job_profile(job, services)
    if chosen is None:
        from cutouts.profiles import Profiles

        chosen = Profiles.default().profiles["default"]
    return chosen


def _write_outputs(job: Job, profile: Profile, master: bytes, services: Services) -> RenderResult:
    from cutouts.rendering import RenderError, render_profile

    settings = services.settings
    relative = relative_key(job.key, settings.input_prefix)
    written: list[str] = []
    failed: list[str] = []
    for spec, result in render_profile(master, profile, settings.max_image_pixels):
        report_key = output_report_key(job.key, settings.input_prefix, settings.failure_prefix, spec.name)
        key = output_key(settings.output_prefix, relative, spec)
        if not isinstance(result, RenderError) and not fits_s3_key(key):
            result = RenderError("key-too-long", f"the output's key would be {len(key.encode())} bytes; S3 allows 1024")
        if isinstance(result, RenderError):
            if not fits_s3_key(report_key):
                logger.warning(
                    "output failed; its report's key is too long too", output=spec.name, reason=result.reason
                )
                failed.append(spec.name)
                continue
            reason = str(getattr(result, "reason", "render-failed"))
            report = FailureReport(
                source_bucket=job.bucket,
                source_key=job.key,
                source_version=job.version,
                job_id=job.job_id,
                reason=reason,
                message=f'output "{spec.name}" of profile "{profile.name}": {result}',
                what_to_do=advice_for(reason),
                request_id=job.request_id,
            )
            write_failure_report(services.s3, job.bucket, report_key, report)
            services.metrics.failure(reason)
            failed.append(spec.name)
            continue
        metadata = cutout_metadata(job.key, job.version, job.job_id, job.request_id or "")
        metadata |= {PROFILE_METADATA_KEY: profile.name, OUTPUT_METADATA_NAME: spec.name}
        services.s3.put_object(
            Bucket=job.bucket, Key=key, Body=result, ContentType=spec.content_type(), Metadata=metadata
        )
        remove_failure_report(services.s3, job.bucket, report_key)
        written.append(key)
    return RenderResult(tuple(written), tuple(failed))


def _read(s3: Any, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
    params = {"Bucket": bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
    try:
        body = s3.get_object(**params)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in GONE:
            return None
        raise
    try:
        return bytes(body.read())
    finally:
        body.close()


# ---- preparing an upload the gateway cannot take as it is ------------------------------------


class PrepareResult(NamedTuple):
    action: str  # "normalised" | "cut-out" | "failed" | "returned"
    detail: str = ""
    render: RenderResult | None = None


def prepare_upload(request: RenderRequest, services: Services, now: float) -> PrepareResult:
    """Normalise an upload into the work prefix and hand it back to submission, or use its own alpha.

    An upload that is already cut out becomes its own master: the job completes with no gateway
    call (``from_cache``, metric GatewayCallsSaved) and its outputs are rendered at once. Anything
    else is normalised (upright, first frame, 8-bit RGB/RGBA, within the pixel cap) to
    ``<work>normalised/<job id>`` and the upload's notification goes back on the upload queue:
    submission finds the copy and presigns it. The original is never modified. A source gone or
    too large goes back too, so submission reports it the usual way.
    """
    settings = services.settings
    from cutouts.normalising import NormaliseError, already_cut_out, master_from_cut_out, normalise

    version = job_version(request.version_id, request.etag)
    job = Job(
        job_id=request.job_id,
        bucket=request.bucket,
        key=request.key,
        version=version,
        status="",
        version_id=request.version_id,
        etag=request.etag,
        profile=request.profile,
    )
    data = _read_capped(services.s3, job, settings.max_image_bytes)
    if data is None:
        _return_to_submission(request, services)
        return PrepareResult("returned", "the upload is gone or over the byte cap: submission reports it")
    if settings.skip_cut_out and already_cut_out(data):
        master = master_from_cut_out(data, settings.max_image_pixels)
        return _complete_from_cut_out(job, request, master, services, now)
    try:
        normalised = normalise(data, settings.max_image_pixels, settings.oversize)
    except NormaliseError as exc:
        ended = fail_new_job(job, services, now, reason=str(exc.reason), message=str(exc))
        return PrepareResult("failed", str(exc.reason) if ended else "already handled")
    services.s3.put_object(
        Bucket=job.bucket,
        Key=normalised_key(job.job_id, settings.work_prefix),
        Body=normalised.data,
        ContentType=normalised.content_type,
        Metadata={"job-id": job.job_id, "downscaled": "true" if normalised.downscaled else "false"},
    )
    _return_to_submission(request, services)
    return PrepareResult("normalised", f"{normalised.width}x{normalised.height} {normalised.content_type}")


def _read_capped(s3: Any, job: Job, max_bytes: int) -> bytes | None:
    params = {"Bucket": job.bucket, "Key": job.key} | ({"VersionId": job.version_id} if job.version_id else {})
    try:
        reply = s3.get_object(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in GONE:
            return None
        raise
    body = reply["Body"]
    try:
        if int(reply.get("ContentLength", 0)) > max_bytes:
            return None
        return bytes(body.read())
    finally:
        body.close()


def _complete_from_cut_out(
    job: Job, request: RenderRequest, master: bytes, services: Services, now: float
) -> PrepareResult:
    settings, store = services.settings, services.store
    lease = store.lease_output(job.bucket, job.key, job.job_id, now, RENDER_LEASE_SECONDS)
    if lease is Lease.SUPERSEDED:
        return PrepareResult("returned", "a newer upload of the key owns its outputs")
    if lease is Lease.BUSY:
        raise RetryRender("another job is writing the key's outputs")
    try:
        target = master_key(job.key, settings.input_prefix, settings.work_prefix)
        metadata = cutout_metadata(job.key, job.version, job.job_id, "")
        metadata |= {PROFILE_METADATA_KEY: job.profile or "default", "cut-out-input": "true"}
        services.s3.put_object(Bucket=job.bucket, Key=target, Body=master, ContentType="image/png", Metadata=metadata)
        if store.mark_completed(job, now, target, from_cache=True):
            remove_failure_report(
                services.s3, job.bucket, failure_key_for(job.key, settings.input_prefix, settings.failure_prefix)
            )
            services.metrics.count(c.METRIC_GATEWAY_CALLS_SAVED)
            services.metrics.count(c.METRIC_COMPLETED)
        else:
            current = store.get(job.job_id)
            if current is None or current.status != COMPLETED:
                return PrepareResult("returned", "the job was already handled")
            # An earlier delivery completed it and died before its outputs were written: render them now.
    finally:
        store.release_output(job.bucket, job.key, job.job_id)
    rendered = render_job(request._replace(kind=RENDER), services, now)
    return PrepareResult("cut-out", "the upload's own alpha is the master; no gateway call", rendered)


def _return_to_submission(request: RenderRequest, services: Services) -> None:
    """The upload's notification again (one record), so the submit function takes it from here."""
    body = upload_notification(request.bucket, request.key, request.version_id, request.etag, request.sequencer)
    services.sqs.send_message(QueueUrl=services.settings.queue_url, MessageBody=body)
    logger.info("upload handed back to submission", source_key=request.key, job_id=request.job_id)
