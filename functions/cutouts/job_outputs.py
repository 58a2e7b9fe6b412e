"""The webhook's side of output profiles: keep the paid result as the master, hand rendering on.

Today's users (every profile the one PNG ``cutout``) keep today's path: the webhook streams the
cutout to its key, and then copies it server-side to the master key, so ``rerender`` has a master
for every key (a copy moves no bytes through the function and costs no memory). Any other
profile: the webhook streams the gateway's PNG to the master key instead and puts a render
request on the render queue; the render function (memory sized for decoding) derives the outputs.
Both happen under the key's output lease, as the cutout write always has, so an older version's
master never lands over a newer one's.
"""

from __future__ import annotations

from cutouts.gateway import COMPLETED, JobStatus
from cutouts.job_store import COMPLETED as COMPLETED_STATUS
from cutouts.job_store import SUPERSEDED, Job
from cutouts.keys import cutout_metadata, failure_key_for, relative_key
from cutouts.masters import master_key, stream_copy
from cutouts.observability import logger
from cutouts.outcomes import Outcome, fail_job
from cutouts.output_format import CUTOUT
from cutouts.profiles import PROFILE_METADATA_KEY, Profile, UnknownProfile
from cutouts.render_requests import RENDER, RenderRequest, send_request
from cutouts.reports import remove_failure_report
from cutouts.safe_download import MediaRejected, MediaUnavailable, fetch_media_to_s3
from cutouts.services import Services


def job_profile(job: Job, services: Services) -> Profile | None:
    """The profile the job was submitted with; None when the functions run without profiles.

    A name no longer declared (the profiles changed since the upload) falls back to the profile
    the key would get now, so the paid result is still delivered.
    """
    profiles = services.profiles
    if profiles is None:
        return None
    if job.profile and job.profile in profiles.profiles:
        return profiles.profiles[job.profile]  # type: ignore[no-any-return]
    try:
        return profiles.choose(relative_key(job.key, services.settings.input_prefix))  # type: ignore[no-any-return]
    except UnknownProfile:  # pragma: no cover - choose without a requested name always finds "default"
        return None


def renders(profile: Profile | None) -> bool:
    """Whether a job of this profile needs the render function (anything but today's one PNG)."""
    return profile is not None and not profile.is_plain_cutout()


def keep_master_copy(job: Job, output_key: str, services: Services) -> None:
    """Copy a plain cutout to the key's master, under the lease its write held (best effort).

    The cutout itself is the user's result; a missing master only means ``rerender`` has nothing
    to start from for this key, which it reports, so a failure here is logged, not raised.
    """
    if services.profiles is None:
        return
    settings = services.settings
    try:
        target = master_key(job.key, settings.input_prefix, settings.work_prefix)
        metadata = cutout_metadata(job.key, job.version, job.job_id, job.request_id or "")
        metadata[PROFILE_METADATA_KEY] = job.profile or "default"
        stream_copy(services.s3, job.bucket, output_key, target, metadata, CUTOUT.content_type)
    except Exception:
        logger.warning("could not keep the cutout as the key's master", exc_info=True, job_id=job.job_id)


def store_master(job: Job, status: JobStatus, profile: Profile, services: Services, now: float) -> Outcome:
    """Under the key's output lease: stream the result to the master key, ask for rendering, end the job.

    The render request goes out before the job is marked COMPLETED: if the final write then
    loses, the render function finds the job not completed by this request and drops it; if the
    request cannot be sent, the callback fails and is delivered again (the master is rewritten,
    nothing is paid twice).
    """
    settings = services.settings
    target = master_key(job.key, settings.input_prefix, settings.work_prefix)
    metadata = cutout_metadata(job.key, job.version, job.job_id, status.request_id)
    metadata[PROFILE_METADATA_KEY] = profile.name
    try:
        fetch_media_to_s3(
            status.media_urls[0], services.media_policy, services.s3, job.bucket, target, metadata, services.resolve
        )
    except MediaRejected as exc:
        fail_job(job, services, now, reason="bad-output", message=str(exc), gateway_status=COMPLETED)
        return Outcome.FAILED
    except MediaUnavailable:
        return Outcome.RETRY_LATER
    send_request(
        services.sqs, settings.render_queue_url, RenderRequest(RENDER, job.bucket, job.key, job.job_id, profile.name)
    )
    if not services.store.mark_completed(job, now, target):
        current = services.store.get(job.job_id)
        if current is None or current.status != COMPLETED_STATUS or current.request_id != status.request_id:
            services.s3.delete_object(Bucket=job.bucket, Key=target)
        if current is not None and current.superseded_by and not current.is_final:
            services.store.mark_final(current, SUPERSEDED, now, "superseded", "a newer version of the key was uploaded")
        return Outcome.ALREADY_FINISHED
    remove_failure_report(
        services.s3, job.bucket, failure_key_for(job.key, settings.input_prefix, settings.failure_prefix)
    )
    return Outcome.COMPLETED
