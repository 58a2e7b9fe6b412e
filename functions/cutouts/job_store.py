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
WAITING = "WAITING"  # another job is paying for the same bytes; this one will copy its cutout
FINAL_STATUSES = frozenset({COMPLETED, FAILED, SUPERSEDED})
OPEN_STATUSES = (SUBMITTING, SUBMITTED, IN_DOUBT, RETRY, RESUBMIT, WAITING)
ALL_STATUSES = (*OPEN_STATUSES, COMPLETED, FAILED, SUPERSEDED)
LATE_REASON = "timed-out"  # the one failure a confirmed result may still turn into a completion


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
    tries: int = 1  # POSTs spent from the retry budget (maxAttempts) since the job (re)opened
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
    errors: int | None = None  # passes of the reconciler that failed on this job
    reopened_at: float | None = None  # an operator's retry: older queue messages are stale

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


def _request_pk(request_id: str) -> str:
    return f"request#{request_id}"


def _content_pk(content_hash: str) -> str:
    return f"content#{content_hash}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


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

    def completed_with_content(self, content_hash: str, limit: int = 25, status: str = COMPLETED) -> Iterator[Job]:
        """Jobs in ``status`` whose source had these exact bytes (the by_content index; eventually consistent)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": CONTENT_INDEX_NAME,
            "KeyConditionExpression": "#h = :h",
            "FilterExpression": "#s = :s",
            "ExpressionAttributeNames": {"#h": CONTENT_INDEX_PARTITION_KEY, "#s": "status"},
            "ExpressionAttributeValues": {":h": {"S": content_hash}, ":s": {"S": status}},
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

    def claim(
        self, job: Job, now: float, lease_seconds: float, *, as_status: str = SUBMITTING, take_from: str = RETRY
    ) -> bool:
        """Create the job in SUBMITTING (or ``as_status``), or take it back from ``take_from``.

        A new job is one conditional PutItem; only a job that already exists (a duplicate
        delivery, or one the queue brings back after a 429) costs a second, updating call. Taking
        a job back gives it the next attempt number, so a callback URL of an earlier run can never
        match again, and keeps its retry budget (``tries``).
        """
        values = {k: v for k, v in asdict(job).items() if v is not None and k not in ("created_at", "updated_at")}
        values |= {"status": as_status, "created_at": now, "updated_at": now}
        if as_status == SUBMITTING:
            values["lease_until"] = now + lease_seconds
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={TABLE_PARTITION_KEY: {"S": _job_pk(job.job_id)}} | {k: _serialize(v) for k, v in values.items()},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            job.status = as_status
            return True
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise JobStoreError(f"DynamoDB put failed: {_error_code(exc)}") from exc
            found = exc.response.get("Item")
        existing = _to_job(found) if found and "job_id" in found else self.get(job.job_id)
        if existing is None or existing.status != take_from:
            return False
        for name in ("created_at", "attempt", "tries", "request_id", "errors"):
            values.pop(name, None)  # the first claim's time and the budget spent are kept
        values["attempt"] = existing.attempt + 1
        if self._conditional(
            _job_pk(job.job_id),
            values,
            remove=("request_id", "errors", TABLE_TTL_ATTRIBUTE),
            condition="#status = :c_from AND #attempt = :c_attempt",
            values={":c_from": take_from, ":c_attempt": existing.attempt},
        ):
            job.status, job.attempt, job.tries, job.created_at = (
                as_status,
                existing.attempt + 1,
                existing.tries,
                existing.created_at,
            )
            job.request_id = None
            return True
        return False

    def bind_request(self, request_id: str, job_id: str, now: float) -> bool:
        """Record that a gateway request belongs to this job. False: it belongs to another one.

        Every accepted or adopted request is bound before it is recorded on its job, so a
        callback cannot make one job adopt another job's request (and so its result).
        """
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    TABLE_PARTITION_KEY: {"S": _request_pk(request_id)},
                    "job_id": {"S": job_id},
                    "updated_at": _serialize(now),
                    TABLE_TTL_ATTRIBUTE: _serialize(int(now) + self._ttl_seconds),
                },
                ConditionExpression="attribute_not_exists(#pk) OR #j = :j",
                ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY, "#j": "job_id"},
                ExpressionAttributeValues={":j": {"S": job_id}},
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise JobStoreError(f"DynamoDB put failed: {_error_code(exc)}") from exc
        return True

    def claim_content(self, content_hash: str, job_id: str, now: float) -> tuple[str, float]:
        """Single flight: make ``job_id`` the one job that pays for these bytes, unless one is already.

        Returns the owner and when it claimed: this job if it won, else the job that did.
        """
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    TABLE_PARTITION_KEY: {"S": _content_pk(content_hash)},
                    "job_id": {"S": job_id},
                    "updated_at": _serialize(now),
                    TABLE_TTL_ATTRIBUTE: _serialize(int(now) + self._ttl_seconds),
                },
                ConditionExpression="attribute_not_exists(#pk) OR #j = :j",
                ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY, "#j": "job_id"},
                ExpressionAttributeValues={":j": {"S": job_id}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise JobStoreError(f"DynamoDB put failed: {_error_code(exc)}") from exc
            found = exc.response.get("Item")
            if not found:
                found = (
                    self._call(
                        "get_item", Key={TABLE_PARTITION_KEY: {"S": _content_pk(content_hash)}}, ConsistentRead=True
                    ).get("Item")
                    or {}
                )
            if found.get("job_id"):
                return str(_deserialize(found["job_id"])), float(_deserialize(found.get("updated_at", {"N": "0"})))
            return self.claim_content(content_hash, job_id, now)
        return job_id, now

    def take_over_content(self, content_hash: str, job_id: str, from_owner: str, now: float) -> bool:
        """The owner of these bytes ended without a result anyone can copy: this job pays instead."""
        return self._conditional(
            _content_pk(content_hash),
            {"job_id": job_id, "updated_at": now},
            condition="#job_id = :c_owner",
            values={":c_owner": from_owner},
        )

    def note_error(self, job: Job, now: float, error: str) -> int:
        """Count a reconcile pass that failed on this job, and send it to the back of the line.

        Returns the count so far, or 0 if the job moved on meanwhile (nothing to count).
        """
        try:
            reply = self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": _job_pk(job.job_id)}},
                UpdateExpression="SET #u = :u, #e = :e ADD #n :one",
                ConditionExpression="#s = :s AND #a = :a",
                ExpressionAttributeNames={
                    "#u": "updated_at",
                    "#e": "error",
                    "#n": "errors",
                    "#s": "status",
                    "#a": "attempt",
                },
                ExpressionAttributeValues={
                    ":u": _serialize(now),
                    ":e": _serialize(error[:1000]),
                    ":one": {"N": "1"},
                    ":s": _serialize(job.status),
                    ":a": _serialize(job.attempt),
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return 0
            raise JobStoreError(f"DynamoDB update failed: {_error_code(exc)}") from exc
        return int(_deserialize(reply.get("Attributes", {}).get("errors", {"N": "1"})))

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
            {
                "status": SUBMITTING,
                "attempt": job.attempt + 1,
                "tries": job.tries + 1,
                "updated_at": now,
                "lease_until": now + lease_seconds,
            },
            remove=("request_id", "errors"),
            condition="#status = :c_s AND #attempt = :c_attempt",
            values={":c_s": job.status, ":c_attempt": job.attempt},
        )

    def mark_completed(self, job: Job, now: float, output_key: str, from_cache: bool = False) -> bool:
        """End a job COMPLETED from SUBMITTED (its request) or, for a cache hit, as it is found.

        A cache hit costs no POST, so it needs no claim: the job is created COMPLETED if it does
        not exist yet, or ended from RETRY (the queue brought it back) or WAITING (it waited for
        the job that paid for the same bytes). Only what changes is written otherwise: an absent
        ``from_cache`` reads as false, and the attributes removed are those this job carries.
        """
        condition = (
            "(#status = :c_from OR (#status = :c_failed AND #reason = :c_late))"
            " AND #request_id = :c_rid AND attribute_not_exists(#superseded_by)"
        )
        values: dict[str, Any] = {
            ":c_from": SUBMITTED,
            ":c_failed": FAILED,
            ":c_late": LATE_REASON,  # the gateway billed it: a result confirmed late is still written
            ":c_rid": job.request_id or "",
        }
        created: dict[str, Any] = {}
        fields: dict[str, Any] = {
            "status": COMPLETED,
            "updated_at": now,
            "finished_at": now,
            "output_key": output_key,
            TABLE_TTL_ATTRIBUTE: int(now) + self._ttl_seconds,
        }
        if from_cache:
            condition = (
                "attribute_not_exists(#pk) OR ((#status = :c_retry OR #status = :c_waiting)"
                " AND attribute_not_exists(#superseded_by))"
            )
            values = {":c_retry": RETRY, ":c_waiting": WAITING}
            identity = ("job_id", "bucket", "key", "version", "version_id", "etag", "attempt", "tries")
            created = {name: getattr(job, name) for name in identity if getattr(job, name) is not None}
            created["created_at"] = job.created_at or now
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
            set_if_absent=created,
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
        """Let a failed job be claimed again (operator retry after fixing the cause).

        The retry budget starts afresh, but the attempt number moves on and the old request is
        forgotten: a late callback of the failed run can neither fail nor complete the new one.
        """
        return self._conditional(
            _job_pk(job.job_id),
            {"status": RETRY, "updated_at": now, "reopened_at": now, "attempt": job.attempt + 1, "tries": 1},
            remove=(TABLE_TTL_ATTRIBUTE, "finished_at", "request_id", "errors", "lease_until"),
            condition="#status = :c_s AND #attempt = :c_attempt",
            values={":c_s": job.status, ":c_attempt": job.attempt},
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
        set_if_absent: Mapping[str, Any] | None = None,
    ) -> bool:
        names = {token: token[1:] for token in re.findall(r"#\w+", condition)}
        sets, attr_values = [], {k: _serialize(v) for k, v in values.items()}
        for i, (name, value) in enumerate(set_values.items()):
            names[f"#f{i}"] = name
            attr_values[f":v{i}"] = _serialize(value)
            sets.append(f"#f{i} = :v{i}")
        for i, (name, value) in enumerate((set_if_absent or {}).items()):
            names[f"#n{i}"] = name
            attr_values[f":n{i}"] = _serialize(value)
            sets.append(f"#n{i} = if_not_exists(#n{i}, :n{i})")
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
