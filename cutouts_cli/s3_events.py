"""Queue messages shaped exactly like S3's own ObjectCreated notifications.

Backfill and retry put these on the upload queue, so an existing object takes the same path as a
new upload: the submit function cannot tell them apart, and its deterministic job id (bucket, key,
version) makes a message for an already-handled version a free duplicate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from cutouts.job_store import Job, JobStore
from cutouts.notifications import SourceObject
from cutouts.s3_objects import head_or_none

EVENT_NAME = "ObjectCreated:Put"
CONFIGURATION_ID = "cutouts-cli"


@dataclass(frozen=True)
class SourceVersion:
    """One version of one source object, as listed or headed in S3."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None  # None when the bucket is not versioned

    @property
    def as_upload(self) -> SourceObject:
        """The upload as the submit function sees it, so both compute the same version and job id."""
        return SourceObject(self.bucket, self.key, self.version_id, self.etag, None)

    @property
    def version(self) -> str:
        return self.as_upload.version

    @property
    def job_id(self) -> str:
        return self.as_upload.job_id


def known_job(store: JobStore, source: SourceVersion) -> tuple[SourceVersion, Job | None]:
    """The job this version already has, if any, and the identity a message must carry to reach it.

    S3 names versions in its events, so jobs are keyed by VersionId; a job keyed by ETag (from an
    event that named no version) is found too, so it is never paid twice.
    """
    job = store.get(source.job_id)
    if job is not None or not source.version_id:
        return source, job
    by_etag = SourceVersion(source.bucket, source.key, source.size, source.etag, None)
    job = store.get(by_etag.job_id)
    return (by_etag, job) if job is not None else (source, None)


def sequencer_for(store: JobStore, source: SourceVersion) -> str | None:
    """A sequencer that orders this message right without superseding a real, newer upload.

    The submit function keeps, per key, the highest sequencer it has seen, and ignores events
    older than it. With no record there is nothing to order against: omit it. If the record names
    this very version, reuse its sequencer. If it names another (older) version, use the smallest
    value above it: any genuinely newer upload has a larger sequencer and still wins.
    """
    job_id, sequencer, _ = store.latest_record(source.bucket, source.key)
    if not sequencer:
        return None
    if job_id == source.job_id:
        return sequencer
    return format(int(sequencer, 16) + 1, "X").rjust(len(sequencer), "0")


def notification_body(source: SourceVersion, region: str, sequencer: str | None) -> str:
    """The JSON body S3 would put on the queue for this object version."""
    obj: dict[str, Any] = {"key": quote_plus(source.key, safe="/"), "size": source.size, "eTag": source.etag}
    if source.version_id:
        obj["versionId"] = source.version_id
    if sequencer:
        obj["sequencer"] = sequencer
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "eventName": EVENT_NAME,
        "userIdentity": {"principalId": CONFIGURATION_ID},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "cutouts-cli", "x-amz-id-2": "cutouts-cli"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": CONFIGURATION_ID,
            "bucket": {
                "name": source.bucket,
                "ownerIdentity": {"principalId": CONFIGURATION_ID},
                "arn": f"arn:aws:s3:::{source.bucket}",
            },
            "object": obj,
        },
    }
    return json.dumps({"Records": [record]}, separators=(",", ":"))


def head_source(s3: Any, bucket: str, key: str) -> SourceVersion | None:
    """The key's current version, or None if it is gone (deleted, or a delete marker)."""
    head = head_or_none(s3, bucket, key)
    if head is None:
        return None
    version_id = head.get("VersionId")
    return SourceVersion(
        bucket=bucket,
        key=key,
        size=int(head.get("ContentLength", 0)),
        etag=str(head.get("ETag", "")).strip('"'),
        version_id=None if version_id in (None, "null") else version_id,
    )


def send_bodies(sqs: Any, queue_url: str, bodies: list[str]) -> int:
    """Send up to ten bodies in one batch; raise if any entry failed (re-running is safe)."""
    if not bodies:
        return 0
    reply = sqs.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
    )
    failed = reply.get("Failed", [])
    if failed:
        raise RuntimeError(f"{len(failed)} queue message(s) were not sent: {failed[0].get('Message')}")
    return len(bodies)
