"""Failure reports: a small JSON document beside the outputs, so the bucket itself tells the user."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts.pixazo import ADVICE as GATEWAY_ADVICE
from cutouts.s3_objects import head_or_none
from cutouts.settings_table import BY_ATTR


def _key(attr: str) -> str:
    """A setting's context key as the settings table names it, so advice never drifts from it."""
    return str(BY_ATTR[attr].key)


# What the user should do, by the reason a job ended with; the gateway provider's own reasons
# (its refusals, a missing key, nothing listening) carry their advice in pixazo.ADVICE.
# tests/functions/test_reports_advice.py fails when the code produces a reason missing from both.
ADVICE: dict[str, str] = {
    # the source itself (image_sniff, submission)
    "empty-file": "Upload the image again: the object has no bytes.",
    "unsupported-type": "Convert the file to JPEG, PNG or WebP and upload it again.",
    "too-large": f"Downscale or compress the image below the limit ({_key('max_image_bytes')} / "
    f"{_key('max_image_pixels')}).",
    "truncated-image": "The upload is incomplete or corrupt: upload the image again.",
    "source-deleted": "The object was deleted before it was processed: nothing to do unless that was a mistake.",
    "key-too-long": "The cutout's key or metadata would exceed S3's limits: upload the image under a shorter "
    "key (shorter folder names or file name).",
    "superseded": "A newer upload of the same key replaced this one; its own job makes the cutout: nothing to do.",
    # the gateway's answers (completion, reconciliation, submission)
    "model-failed": "The model could not process this image, or the gateway no longer knows the request: "
    "check the image shows a clear subject, then retry the job.",
    "gateway-error-exhausted": "The gateway reported a system error (not charged), or gave no result, on every "
    f"attempt ({_key('max_attempts')}): check the gateway's status, then retry the job.",
    "gateway-gave-up": "The gateway stayed busy or failing (429, 408 or 5xx, or no answer in time) on every "
    f"delivery of the upload ({_key('max_receives')}): check the gateway's status, then retry the job.",
    "bad-output": "The gateway's result was not a usable image, or not from an allowed host: check "
    f"{_key('allowed_media_hosts')} and the gateway's status, then retry the job.",
    # the pipeline's own limits (reconciliation)
    "timed-out": f"No result came within the maximum job age ({_key('max_age_seconds')}): check the gateway's "
    "status, then "
    "retry the job; a result that still arrives completes it.",
    "dead-lettered": "The upload's message failed on every delivery and went to the dead-letter queue: see the "
    "submit function's logs for the error, fix it, then retry the job (retry --reason dead-lettered).",
    "upload-loop": f"This key was uploaded more than {_key('max_versions_per_key_per_day')} times in one UTC "
    "day: a sync job or another system is re-uploading it in a loop. Stop the loop; the key's next upload "
    "after midnight UTC is cut out as usual (or upload it again then).",
    # rendering's dead letters (render_dead_letters): every delivery of the render request failed
    "prepare-failed": "Preparing the upload for the gateway (normalising a HEIC, rotated, CMYK or 16-bit "
    "image, or checking whether it is already cut out) failed on every delivery of its render request, which "
    "went to the render dead-letter queue: see the render function's logs (memory, time-out), fix the cause, "
    "then retry the job. Nothing was paid.",
    "render-dead-lettered": "This output was never written: its render request failed on every delivery and "
    "went to the render dead-letter queue. See the render function's logs (memory, time-out), fix the cause, "
    "then rerender (python -m cutouts_cli rerender): the kept result is used, the gateway is not paid again.",
    "reconcile-failed": "The reconciler failed on this job again and again (the message has the last error): see "
    "the reconcile function's logs, fix the cause, then retry the job.",
}
GENERIC_ADVICE = "See the message, fix the cause, then retry the job."


class FailureReport(NamedTuple):
    source_bucket: str
    source_key: str
    source_version: str
    job_id: str
    reason: str
    message: str
    what_to_do: str
    request_id: str | None = None
    gateway_status: str | None = None
    gateway_error: str | None = None
    http_status: int | None = None
    attempts: int | None = None
    earlier_cutout: str | None = None  # the key's cutout is from an earlier upload, not this one
    failed_at: str = ""

    def to_json(self) -> bytes:
        doc: dict[str, Any] = self._asdict()
        if self.earlier_cutout:
            doc["message"] = (
                f"{self.message} (the cutout at {self.earlier_cutout} is from an earlier upload or run of this key)"
            )
        doc["failed_at"] = self.failed_at or datetime.now(UTC).isoformat(timespec="seconds")
        return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def advice_for(reason: str) -> str:
    """What to do about a reason, wherever it came from: a waiter that shares a gateway refusal
    (single_flight) and the CLI's status need the gateway's advice as much as its own report did."""
    return ADVICE.get(reason) or GATEWAY_ADVICE.get(reason) or _imaging_advice().get(reason) or GENERIC_ADVICE


def _imaging_advice() -> dict[str, str]:
    """Profiles, rendering and normalising keep their reasons' advice beside the code that raises them."""
    from cutouts import normalising, profiles, rendering

    return {**profiles.ADVICE, **rendering.ADVICE, **normalising.ADVICE}


def write_failure_report(s3: Any, bucket: str, report_key: str, report: FailureReport) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=report_key,
        Body=report.to_json(),
        ContentType="application/json",
        Metadata={"job-id": report.job_id, "reason": report.reason},
    )


def remove_failure_report(s3: Any, bucket: str, report_key: str) -> None:
    """A later success makes an old report wrong; deleting a missing key is a no-op in S3."""
    try:
        s3.delete_object(Bucket=bucket, Key=report_key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise


def cutout_owner(s3: Any, bucket: str, output_key: str) -> str | None:
    """The job a cutout says it came from (its ``job-id`` metadata), or None if there is none."""
    head = head_or_none(s3, bucket, output_key)
    if head is None:
        return None
    return str(head.get("Metadata", {}).get("job-id", "")) or "unknown"
