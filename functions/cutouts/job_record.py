"""One job's record in the table: its attributes, and how they are written to and read from DynamoDB.

``TableAccess`` is the plumbing the job store and the key records share: DynamoDB errors become
``JobStoreError``, except a failed condition, which is a plain False for the caller to act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from botocore.exceptions import ClientError

from cutouts.constants import TABLE_PARTITION_KEY
from cutouts.job_states import FINAL


class JobStoreError(RuntimeError):
    """DynamoDB failed in a way the caller cannot fix by itself (throttling, outage)."""


@dataclass
class Job:
    job_id: str
    bucket: str
    key: str
    version: str  # the S3 version id, or the ETag when the bucket is not versioned
    status: str
    attempt: int = 1  # names the callback URL: it only grows, so an old URL never matches again
    tries: int = 1  # POSTs spent from the retry budget since the job (re)opened
    version_id: str | None = None
    etag: str | None = None
    request_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    submitted_at: float | None = None
    finished_at: float | None = None
    lease_until: float | None = None
    reason: str | None = None
    error: str | None = None
    output_key: str | None = None
    content_hash: str | None = None
    from_cache: bool | None = None
    superseded_by: str | None = None  # a newer version of the key was uploaded while this one ran
    errors: int | None = None  # passes of the reconciler that failed on this job
    reopened_at: float | None = None  # an operator's retry: older queue messages are stale
    event_pending: str | None = None  # the end (state) whose event is not on the bus yet (job_events)
    uploaded_at: float | None = None  # the S3 event's time, when the notification gave one
    parked_reason: str | None = None  # why the spend guard parked it: "daily-budget" or "monthly-budget"
    parked_at: float | None = None
    resumed_at: float | None = None  # left PARKED: its maximum age counts from here, not from the upload
    profile: str | None = None  # the output profile chosen at submission (cutouts/profiles.py)
    submit_key: str | None = None  # a normalised copy submitted instead of the upload (work prefix)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL


_JOB_FIELDS = {f.name for f in fields(Job)}


def serialize(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}
    return {"S": str(value)}


def deserialize(attr: Mapping[str, Any]) -> Any:
    if "S" in attr:
        return attr["S"]
    if "N" in attr:
        number = float(attr["N"])
        return int(number) if number.is_integer() and "." not in attr["N"] else number
    if "BOOL" in attr:
        return attr["BOOL"]
    return None


def job_pk(job_id: str) -> str:
    return f"job#{job_id}"


def key_pk(bucket: str, key: str) -> str:
    return f"key#{bucket}/{key}"


def request_pk(request_id: str) -> str:
    return f"request#{request_id}"


def content_pk(content_hash: str) -> str:
    return f"content#{content_hash}"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def to_job(item: Mapping[str, Any]) -> Job:
    values = {name: deserialize(attr) for name, attr in item.items() if name in _JOB_FIELDS}
    for name in ("created_at", "updated_at"):
        values[name] = float(values.get(name) or 0)
    return Job(**values)


def job_from_values(values: Mapping[str, Any]) -> Job:
    """A job from an update's returned (already deserialized) attributes."""
    known = {name: value for name, value in values.items() if name in _JOB_FIELDS}
    for name in ("created_at", "updated_at"):
        known[name] = float(known.get(name) or 0)
    return Job(**known)


def present(job: Job, names: Sequence[str]) -> dict[str, Any]:
    """The job's values for these attributes, leaving out those it does not have."""
    return {name: getattr(job, name) for name in names if getattr(job, name, None) is not None}


def job_ref(job_id: str, attempt: int = 0, *, status: str = "", request_id: str | None = None) -> Job:
    """A job as a caller that knows only some of it acted on it (for the transition's guards)."""
    return Job(job_id=job_id, bucket="", key="", version="", status=status, attempt=attempt, request_id=request_id)


class TableAccess:
    def __init__(self, dynamodb: Any, table_name: str, ttl_days: int = 30) -> None:
        self._ddb = dynamodb
        self._table = table_name
        self._ttl_seconds = ttl_days * 86400

    # --- plumbing --------------------------------------------------------------------------

    def _conditional(
        self,
        pk: str,
        set_values: Mapping[str, Any],
        *,
        condition: str,
        values: Mapping[str, Any],
        remove: Sequence[str] = (),
    ) -> bool:
        names = {token: token[1:] for token in re.findall(r"#\w+", condition)}
        sets, attr_values = [], {k: serialize(v) for k, v in values.items()}
        for i, (name, value) in enumerate(set_values.items()):
            names[f"#f{i}"] = name
            attr_values[f":v{i}"] = serialize(value)
            sets.append(f"#f{i} = :v{i}")
        expression = "SET " + ", ".join(sets)
        if remove:
            for i, name in enumerate(remove):
                names[f"#r{i}"] = name
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        try:
            # The client itself, not _call_raw: that one turns every ClientError into JobStoreError,
            # and a failed condition must come back here as a plain False.
            self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": pk}},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attr_values,
                **({"ConditionExpression": condition} if condition else {}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise JobStoreError(f"DynamoDB update failed: {exc.response.get('Error', {}).get('Code')}") from exc
        return True

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return self._call_raw(operation, TableName=self._table, **kwargs)

    def _call_raw(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._ddb, operation)(**kwargs)
        except ClientError as exc:
            raise JobStoreError(f"DynamoDB {operation} failed: {exc.response.get('Error', {}).get('Code')}") from exc
