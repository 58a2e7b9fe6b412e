"""Completion events of jobs whose outputs are rendered: announced once the outputs exist.

A job whose profile renders ends COMPLETED when its master is written (the webhook, or an upload
already cut out), and the render function writes the outputs afterwards. Announcing the end right
then would tell consumers of outputs that do not exist yet, and name the master. So such an end is
deferred (``renders_later``: the job's record names the master as its result), the render function
announces it after writing (``announce_render``: each output written, each failed with its
report), and the reconciler announces it anyway once the render queue's whole retry window has
passed (``existing_outputs``: the outputs that are there), so a dead-lettered render never loses
the end. The job's ``event_pending`` mark decides: whoever announces clears it, and nobody
announces an end whose mark is gone (a redelivered render, a ``rerender``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from cutouts.job_events import FailedOutput, OutputWritten
from cutouts.job_outputs import job_profile
from cutouts.job_record import Job
from cutouts.job_states import Status
from cutouts.keys import fits_s3_key, relative_key
from cutouts.masters import master_key, output_report_key
from cutouts.observability import logger
from cutouts.profiles import Profile, Profiles, output_key
from cutouts.s3_objects import head_or_none
from cutouts.services import Services
from cutouts.settings import Settings

# The render queue's visibility time-out: six times the render function's 300 s time-out
# (infra/rendering.py; tests/functions/test_render_events.py keeps the two equal).
RENDER_VISIBILITY_SECONDS = 6 * 300.0
_NOT_ALLOWED = ("403", "AccessDenied", "Forbidden")


def render_retry_window(settings: Settings) -> float:
    """How long a render request may still be retried: visibility time-out × deliveries before the DLQ."""
    return RENDER_VISIBILITY_SECONDS * max(1, settings.max_receives)


def renders_later(job: Job, settings: Settings) -> bool:
    """A COMPLETED job whose result is the key's master: the render function writes its outputs."""
    return (
        job.status == Status.COMPLETED
        and bool(job.output_key)
        and job.output_key == master_key(job.key, settings.input_prefix, settings.work_prefix)
    )


def _failed(job: Job, name: str, settings: Settings) -> FailedOutput:
    report = output_report_key(job.key, settings.input_prefix, settings.failure_prefix, name)
    return FailedOutput(name, report if fits_s3_key(report) else None)


def announce_render(
    job: Job, profile: Profile, written: Sequence[str], failed: Sequence[str], services: Services
) -> bool:
    """After a render: the job's one ``Cutout Created`` with what was written, if its end is still pending.

    Never raises (a failed PutEvents is counted and the mark stays for the reconciler).
    """
    announcer = services.events
    if announcer is None or not hasattr(announcer, "announce_outputs"):
        return False
    try:
        settings = services.settings
        relative = relative_key(job.key, settings.input_prefix)
        names = {output_key(settings.output_prefix, relative, spec): spec.name for spec in profile.outputs}
        outputs = [OutputWritten(key, profile.name, names.get(key)) for key in written]
        return bool(announcer.announce_outputs(job, outputs, [_failed(job, name, settings) for name in failed]))
    except Exception:  # noqa: BLE001  (an event must never fail the render)
        logger.warning("could not announce the rendered outputs", exc_info=True, job_id=job.job_id)
        return False


def drop_render_event(job: Job, services: Services, now: float) -> bool:
    """A deferred end whose outputs a newer upload of the key took over: clear its mark, send nothing.

    Like a SUPERSEDED end (docs/events.md): announcing outputs this job will never write would tell
    consumers of objects that are the newer upload's. Never raises (the reconciler's fallback remains).
    """
    if job.event_pending != Status.COMPLETED or not renders_later(job, services.settings):
        return False
    try:
        dropped = bool(services.store.mark_event_sent(job, now))
    except Exception:  # noqa: BLE001  (the reconciler announces it late instead)
        logger.warning("could not let go of a superseded render's event", exc_info=True, job_id=job.job_id)
        return False
    if dropped:
        logger.info("render superseded: its end is not announced", job_id=job.job_id)
    return dropped


def existing_outputs(job: Job, services: Services) -> tuple[list[OutputWritten], list[FailedOutput]]:
    """The outputs of the job's profile that stand in the bucket as this job's (HEAD each), and the others.

    An output missing has its report if one was written, else ``report_key`` None.
    """
    settings, s3 = services.settings, services.s3
    profile = job_profile(job, services) or Profiles.default().profiles["default"]
    relative = relative_key(job.key, settings.input_prefix)
    written: list[OutputWritten] = []
    failed: list[FailedOutput] = []
    for spec in profile.outputs:
        key = output_key(settings.output_prefix, relative, spec)
        head = head_or_none(s3, job.bucket, key) if fits_s3_key(key) else None
        if head is not None and _metadata(head).get("job-id") == job.job_id:
            written.append(OutputWritten(key, profile.name, spec.name))
            continue
        report = _failed(job, spec.name, settings)
        has_report = report.report_key is not None and _report_exists(s3, job.bucket, report.report_key)
        failed.append(report if has_report else FailedOutput(spec.name, None))
    return written, failed


def _report_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether a failed output's report is there; a function not allowed to read reports (the
    reconciler may only write them) says so as unknown, which the event shows as null."""
    try:
        return head_or_none(s3, bucket, key) is not None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_ALLOWED:
            return False
        raise


def _metadata(head: dict[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
