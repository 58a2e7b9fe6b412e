"""The job table: the only module that talks to DynamoDB.

One item per source object version (``job#<id>``) and one per source key (``key#<bucket>/<key>``)
naming the newest version seen. Every state change is a conditional update from the states it
may come from, so duplicate deliveries, a webhook racing the reconciler, or a late callback
find the condition false and change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from botocore.exceptions import ClientError

from cutouts.constants import (
    CONTENT_INDEX_NAME,
    CONTENT_INDEX_PARTITION_KEY,
    STATUS_INDEX_NAME,
    TABLE_PARTITION_KEY,
    TABLE_TTL_ATTRIBUTE,
)

SUBMITTING = "SUBMITTING"  # claimed; the POST to the gateway is under way (lease_until bounds it)
SUBMITTED = "SUBMITTED"  # the gateway accepted it (request_id known); waiting for the result
IN_DOUBT = "IN_DOUBT"  # sent, but no answer came back: maybe accepted; a callback may adopt it
RETRY = "RETRY"  # the gateway refused it for now (429/5xx); the queue will bring it back
RESUBMIT = "RESUBMIT"  # the gateway reported ERROR (not charged); the reconciler resubmits
COMPLETED = "COMPLETED"
FAILED = "FAILED"
SUPERSEDED = "SUPERSEDED"  # a newer version of the same key took over
FINAL_STATUSES = frozenset({COMPLETED, FAILED, SUPERSEDED})
OPEN_STATUSES = (SUBMITTING, SUBMITTED, IN_DOUBT, RETRY, RESUBMIT)


class JobStoreError(RuntimeError):
    """DynamoDB failed in a way the caller cannot fix by itself (throttling, outage)."""


@dataclass
class Job:
    job_id: str
    bucket: str
    key: str
    version: str  # the S3 version id, or the ETag when the bucket is not versioned
    status: str
    attempt: int = 1
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
    clear_report: bool | None = None  # the key may hold a failure report a success must remove

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


_JOB_FIELDS = {f.name for f in fields(Job)}


def _serialize(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}
    return {"S": str(value)}


def _deserialize(attr: Mapping[str, Any]) -> Any:
    if "S" in attr:
        return attr["S"]
    if "N" in attr:
        number = float(attr["N"])
        return int(number) if number.is_integer() and "." not in attr["N"] else number
    if "BOOL" in attr:
        return attr["BOOL"]
    return None


def _job_pk(job_id: str) -> str:
    return f"job#{job_id}"


def _key_pk(bucket: str, key: str) -> str:
    return f"key#{bucket}/{key}"


def _to_job(item: Mapping[str, Any]) -> Job:
    values = {name: _deserialize(attr) for name, attr in item.items() if name in _JOB_FIELDS}
    for name in ("created_at", "updated_at"):
        values[name] = float(values.get(name) or 0)
    return Job(**values)


class JobStore:
    def __init__(self, dynamodb: Any, table_name: str, ttl_days: int = 30) -> None:
        self._ddb = dynamodb
        self._table = table_name
        self._ttl_seconds = ttl_days * 86400

    # --- reads -----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        item = self._call("get_item", Key={TABLE_PARTITION_KEY: {"S": _job_pk(job_id)}}, ConsistentRead=True)
        found = item.get("Item")
        return _to_job(found) if found and "job_id" in found else None

    def list_by_status(self, status: str, updated_before: float, limit: int = 100) -> Iterator[Job]:
        """Jobs in ``status`` last touched before ``updated_before``, oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": STATUS_INDEX_NAME,
            "KeyConditionExpression": "#s = :s AND #u < :t",
            "ExpressionAttributeNames": {"#s": "status", "#u": "updated_at"},
            "ExpressionAttributeValues": {":s": {"S": status}, ":t": _serialize(float(updated_before))},
        }
        seen = 0
        while seen < limit:
            page = self._call_raw("query", **kwargs, Limit=min(100, limit - seen))
            for item in page.get("Items", []):
                seen += 1
                yield _to_job(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def count_by_status(self, status: str) -> int:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": STATUS_INDEX_NAME,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": status}},
            "Select": "COUNT",
        }
        total = 0
        while True:
            page = self._call_raw("query", **kwargs)
            total += page.get("Count", 0)
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def latest_job_for(self, bucket: str, key: str) -> str | None:
        return self.latest_record(bucket, key)[0]

    def latest_record(self, bucket: str, key: str) -> tuple[str | None, str | None]:
        """The key record: (job id, padded sequencer) of the newest version seen, or (None, None)."""
        item = self._call("get_item", Key={TABLE_PARTITION_KEY: {"S": _key_pk(bucket, key)}}, ConsistentRead=True)
        found = item.get("Item") or {}
        job_id, sequencer = found.get("job_id"), found.get("sequencer")
        return (_deserialize(job_id) if job_id else None, _deserialize(sequencer) if sequencer else None)

    def completed_with_content(self, content_hash: str, limit: int = 25) -> Iterator[Job]:
        """COMPLETED jobs whose source had these exact bytes (the by_content index; eventually consistent)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": CONTENT_INDEX_NAME,
            "KeyConditionExpression": "#h = :h",
            "FilterExpression": "#s = :s",
            "ExpressionAttributeNames": {"#h": CONTENT_INDEX_PARTITION_KEY, "#s": "status"},
            "ExpressionAttributeValues": {":h": {"S": content_hash}, ":s": {"S": COMPLETED}},
        }
        seen = 0
        while seen < limit:
            page = self._call_raw("query", **kwargs)
            for item in page.get("Items", []):
                seen += 1
                yield _to_job(item)
                if seen >= limit:
                    return
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- writes ----------------------------------------------------------------------------

    def record_latest(self, bucket: str, key: str, sequencer: str, job_id: str, now: float) -> bool:
        """Note ``job_id`` as the newest version of the key unless a newer event was already seen."""
        return self.note_newest(bucket, key, sequencer, job_id, now) is not None

    def note_newest(self, bucket: str, key: str, sequencer: str, job_id: str, now: float) -> dict[str, Any] | None:
        """Like record_latest; returns the key record as it was before ({} if new), or None if superseded.

        The previous record says which job this version replaces (so it can be told) and whether a
        failure report was written for the key (so a success knows to remove it).
        """
        try:
            reply = self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": _key_pk(bucket, key)}},
                UpdateExpression="SET #q = :q, #j = :j, #u = :u, #t = :t",
                ConditionExpression="attribute_not_exists(#pk) OR attribute_not_exists(#q) OR #q <= :q",
                ExpressionAttributeNames={
                    "#q": "sequencer",
                    "#j": "job_id",
                    "#u": "updated_at",
                    "#t": TABLE_TTL_ATTRIBUTE,
                    "#pk": TABLE_PARTITION_KEY,
                },
                ExpressionAttributeValues={
                    ":q": {"S": sequencer},
                    ":j": {"S": job_id},
                    ":u": _serialize(now),
                    ":t": _serialize(int(now) + self._ttl_seconds),
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise JobStoreError(f"DynamoDB update failed: {exc.response.get('Error', {}).get('Code')}") from exc
        return {name: _deserialize(attr) for name, attr in reply.get("Attributes", {}).items()}

    def tell_superseded(self, job_id: str, by_job_id: str, now: float) -> bool:
        """Tell an older version's job that a newer one owns the output key now."""
        return self._conditional(
            _job_pk(job_id),
            {"superseded_by": by_job_id},
            condition="attribute_exists(#pk)",
            values={},
        )

    def flag_report(self, bucket: str, key: str, now: float) -> bool:
        """Note on the key record that a failure report exists, before it is written."""
        return self._conditional(
            _key_pk(bucket, key),
            {"has_report": True, "updated_at": now},
            condition="",  # create the key record if there is none yet
            values={},
        )

    def claim(self, job: Job, now: float, lease_seconds: float) -> bool:
        """Create the job in SUBMITTING, or take it back from RETRY. False: someone else has it.

        A new job is one conditional PutItem; only a job that already exists (a duplicate
        delivery, or one the queue brings back after a 429) costs the second, updating call.
        """
        values = {k: v for k, v in asdict(job).items() if v is not None and k not in ("created_at", "updated_at")}
        values |= {"status": SUBMITTING, "created_at": now, "updated_at": now, "lease_until": now + lease_seconds}
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={TABLE_PARTITION_KEY: {"S": _job_pk(job.job_id)}} | {k: _serialize(v) for k, v in values.items()},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise JobStoreError(f"DynamoDB put failed: {exc.response.get('Error', {}).get('Code')}") from exc
            existing = exc.response.get("Item") or {}
            if existing and existing.get("status", {}).get("S") != RETRY:
                return False
        del values["created_at"]  # the first claim's time is kept
        return self._conditional(
            _job_pk(job.job_id),
            values,
            remove=("request_id", TABLE_TTL_ATTRIBUTE),
            condition="#status = :c_retry",
            values={":c_retry": RETRY},
        )

    def mark_submitted(
        self, job_id: str, attempt: int, request_id: str, now: float, content_hash: str | None = None
    ) -> bool:
        """The gateway accepted: record its request id (and the source's hash, for de-duplication)."""
        values: dict[str, Any] = {"status": SUBMITTED, "request_id": request_id, "submitted_at": now, "updated_at": now}
        if content_hash:
            values[CONTENT_INDEX_PARTITION_KEY] = content_hash
        return self._conditional(
            _job_pk(job_id),
            values,
            remove=("lease_until",),
            condition="#status = :c_from AND #attempt = :c_attempt",
            values={":c_from": SUBMITTING, ":c_attempt": attempt},
        )

    def mark_in_doubt(self, job_id: str, attempt: int, now: float, error: str) -> bool:
        return self._conditional(
            _job_pk(job_id),
            {"status": IN_DOUBT, "updated_at": now, "error": error},
            condition="#status = :c_from AND #attempt = :c_attempt",
            values={":c_from": SUBMITTING, ":c_attempt": attempt},
        )

    def release(self, job_id: str, attempt: int, now: float, error: str, to_status: str = RETRY) -> bool:
        """The gateway refused the POST for now: hand the job back (RETRY: to the queue)."""
        return self._conditional(
            _job_pk(job_id),
            {"status": to_status, "updated_at": now, "error": error},
            remove=("lease_until",),
            condition="#status = :c_from AND #attempt = :c_attempt",
            values={":c_from": SUBMITTING, ":c_attempt": attempt},
        )

    def adopt(self, job_id: str, attempt: int, request_id: str, now: float) -> bool:
        """A genuine callback names the request of a submission whose answer we never saw."""
        return self._conditional(
            _job_pk(job_id),
            {"status": SUBMITTED, "request_id": request_id, "submitted_at": now, "updated_at": now},
            remove=("lease_until",),
            condition=(
                "(#status = :c_a OR #status = :c_b) AND #attempt = :c_attempt AND attribute_not_exists(#request_id)"
            ),
            values={":c_a": IN_DOUBT, ":c_b": SUBMITTING, ":c_attempt": attempt},
        )

    def touch(self, job_id: str, status: str, now: float) -> bool:
        return self._conditional(
            _job_pk(job_id), {"updated_at": now}, condition="#status = :c_s", values={":c_s": status}
        )

    def mark_resubmit(self, job_id: str, request_id: str, now: float, error: str | None) -> bool:
        return self._conditional(
            _job_pk(job_id),
            {"status": RESUBMIT, "updated_at": now, "error": error or "gateway reported ERROR"},
            condition="#status = :c_from AND #request_id = :c_rid",
            values={":c_from": SUBMITTED, ":c_rid": request_id},
        )

    def claim_resubmission(self, job: Job, now: float, lease_seconds: float) -> bool:
        """Move a job from RESUBMIT or IN_DOUBT to SUBMITTING with the next attempt number."""
        return self._conditional(
            _job_pk(job.job_id),
            {"status": SUBMITTING, "attempt": job.attempt + 1, "updated_at": now, "lease_until": now + lease_seconds},
            remove=("request_id",),
            condition="#status = :c_s AND #attempt = :c_attempt",
            values={":c_s": job.status, ":c_attempt": job.attempt},
        )

    def mark_completed(self, job: Job, now: float, output_key: str, from_cache: bool = False) -> bool:
        """End a job COMPLETED from SUBMITTED (its request) or, for a cache hit, from its own claim.

        Only what changes is written: an absent ``from_cache`` reads as false, and the hash and
        the attributes to remove are those this job carries (a claim always holds a lease).
        """
        condition = "#status = :c_from AND #request_id = :c_rid"
        values: dict[str, Any] = {":c_from": SUBMITTED, ":c_rid": job.request_id or ""}
        fields: dict[str, Any] = {
            "status": COMPLETED,
            "updated_at": now,
            "finished_at": now,
            "output_key": output_key,
            TABLE_TTL_ATTRIBUTE: int(now) + self._ttl_seconds,
        }
        if from_cache:
            condition, values = (
                "#status = :c_from AND #attempt = :c_attempt",
                {":c_from": SUBMITTING, ":c_attempt": job.attempt},
            )
            fields["from_cache"] = True
            if job.content_hash:
                fields[CONTENT_INDEX_PARTITION_KEY] = job.content_hash  # it can lend its cutout on in turn
        stale = {
            "lease_until": from_cache or job.lease_until is not None,
            "error": job.error is not None,
            "reason": job.reason is not None,
        }
        return self._conditional(
            _job_pk(job.job_id),
            fields,
            remove=tuple(name for name, present in stale.items() if present),
            condition=condition,
            values=values,
        )

    def mark_final(self, job: Job, status: str, now: float, reason: str, error: str) -> bool:
        """End a job as FAILED or SUPERSEDED, from the state the caller last saw it in."""
        condition = "#status = :c_s AND #attempt = :c_attempt"
        values: dict[str, Any] = {":c_s": job.status, ":c_attempt": job.attempt}
        return self._conditional(
            _job_pk(job.job_id),
            {
                "status": status,
                "updated_at": now,
                "finished_at": now,
                "reason": reason,
                "error": error[:1000],
                TABLE_TTL_ATTRIBUTE: int(now) + self._ttl_seconds,
            },
            remove=("lease_until",),
            condition=condition,
            values=values,
        )

    def reopen(self, job: Job, now: float) -> bool:
        """Let a failed job be claimed again (operator retry after fixing the cause)."""
        return self._conditional(
            _job_pk(job.job_id),
            {"status": RETRY, "updated_at": now, "attempt": 1},
            remove=(TABLE_TTL_ATTRIBUTE, "finished_at"),
            condition="#status = :c_s",
            values={":c_s": job.status},
        )

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
        sets, attr_values = [], {k: _serialize(v) for k, v in values.items()}
        for i, (name, value) in enumerate(set_values.items()):
            names[f"#f{i}"] = name
            attr_values[f":v{i}"] = _serialize(value)
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
