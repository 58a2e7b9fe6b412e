"""S3 event notifications as they reach us through SQS: one parser for every reader.

The submit function, the reconciler's dead-letter sweep and the operations CLI all read these
bodies; parsing them in one place keeps them agreeing on what an upload is: an ``ObjectCreated``
record under any key, with the key URL-decoded and a suspended bucket's version ``"null"`` read as
no version. S3's one-off ``s3:TestEvent`` and anything malformed name no upload.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import quote_plus

from cutouts.job_store import Job
from cutouts.keys import decode_event_key, job_id_for, job_version, real_version_id


class SourceObject(NamedTuple):
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    sequencer: str | None
    uploaded_at: float | None = None  # the record's eventTime: completion events time jobs from it

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
            uploaded_at=self.uploaded_at,
        )


class Notification(NamedTuple):
    sources: list[SourceObject]
    is_test_event: bool = False
    problem: str | None = None  # why the body is not an S3 notification at all


def parse_notification(body: str) -> Notification:
    """The uploads a queue message names; never raises, whatever the body holds."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return Notification([], problem="the message body is not JSON")
    if not isinstance(doc, dict):
        return Notification([], problem="the message body is not an S3 notification")
    if doc.get("Event") == "s3:TestEvent":
        return Notification([], is_test_event=True)  # S3 sends this once when notifications are configured
    records = doc.get("Records")
    if not isinstance(records, list):
        return Notification([], problem="the message has no Records")
    sources = []
    for record in records:
        if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        try:
            sources.append(source_from_s3_record(record))
        except (KeyError, TypeError, AttributeError):
            continue
    return Notification(sources)


def sources_in_notification(body: str) -> list[SourceObject]:
    """The uploads a notification message names; none for a test event or anything malformed."""
    return parse_notification(body).sources


def source_from_s3_record(record: dict[str, Any]) -> SourceObject:
    """One record of an S3 event notification (the key is URL-encoded there)."""
    s3 = record["s3"]
    obj = s3["object"]
    return SourceObject(
        bucket=s3["bucket"]["name"],
        key=decode_event_key(obj["key"]),
        version_id=real_version_id(obj.get("versionId")),
        etag=obj.get("eTag") or None,
        sequencer=obj.get("sequencer") or None,
        uploaded_at=_event_time(record.get("eventTime")),
    )


def _event_time(value: Any) -> float | None:
    """S3's ``eventTime`` (``2026-11-30T22:36:55.123Z``) as epoch seconds; None if absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def upload_notification(bucket: str, key: str, version_id: str | None, etag: str | None, sequencer: str | None) -> str:
    """The upload's S3 notification again (one record), for the submit function to take from the queue.

    It names the same object version (so the same job) and, given the key record's sequencer for
    this job, orders as the original did.
    """
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if version_id:
        obj["versionId"] = version_id
    if etag:
        obj["eTag"] = etag
    if sequencer:
        obj["sequencer"] = sequencer
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": obj},
    }
    return json.dumps({"Records": [record]})
