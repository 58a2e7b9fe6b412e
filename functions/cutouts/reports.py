"""Failure reports: a small JSON document beside the outputs, so the bucket itself tells the user."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts.s3_objects import head_or_none

# What the user should do, by failure reason; gateway reasons carry their own advice.
ADVICE: dict[str, str] = {
    "empty-file": "Upload the image again: the object has no bytes.",
    "unsupported-type": "Convert the file to JPEG, PNG or WebP and upload it again.",
    "too-large": "Downscale or compress the image below the limit (maxImageBytes / maxImagePixels).",
    "truncated-image": "The upload is incomplete or corrupt: upload the image again.",
    "source-deleted": "The object was deleted before it was processed: nothing to do unless that was a mistake.",
    "model-failed": "The model could not process this image: check it shows a clear subject, then retry.",
    "gateway-error-exhausted": "The gateway kept reporting a system error (not charged): retry later.",
    "gateway-gave-up": "The gateway kept refusing (429/5xx) until the retry budget ran out: retry later.",
    "timed-out": "No result came within the maximum job age: check the gateway's status, then retry.",
    "bad-output": "The gateway's result was not a usable image from an allowed host: check allowedMediaHosts.",
    "dead-lettered": "Processing crashed repeatedly; see the submit function's logs, then redrive.",
}


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
                f"{self.message} (the cutout at {self.earlier_cutout} is from an earlier upload of this key)"
            )
        doc["failed_at"] = self.failed_at or datetime.now(UTC).isoformat(timespec="seconds")
        return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def advice_for(reason: str) -> str:
    return ADVICE.get(reason, "See the message, fix the cause, then retry the job.")


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
