"""The job table: the only module that talks to DynamoDB.

One item per source object version (``job#<id>``), one per source key (``key#<bucket>/<key>``)
naming the newest version seen, one per gateway request (``request#<id>``) naming the job it
belongs to, and one per content hash (``content#<sha256>``) naming the job that pays for those
bytes. A job changes only through a transition of ``job_states.TRANSITIONS``, written as one
conditional update, so duplicate deliveries, a webhook racing the reconciler, or a late callback
find the condition false and change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts.constants import (
    CONTENT_INDEX_NAME,
    CONTENT_INDEX_PARTITION_KEY,
    STATUS_INDEX_NAME,
    TABLE_PARTITION_KEY,
    TABLE_TTL_ATTRIBUTE,
)
from cutouts.job_states import FINAL, IDENTITY, LATE_REASON, NEW, OPEN, TRANSITIONS, Guard, Status

# The states live in job_states (with every transition); these names are what callers import.
SUBMITTING, SUBMITTED, IN_DOUBT = Status.SUBMITTING, Status.SUBMITTED, Status.IN_DOUBT
RETRY, RESUBMIT, WAITING = Status.RETRY, Status.RESUBMIT, Status.WAITING
COMPLETED, FAILED, SUPERSEDED = Status.COMPLETED, Status.FAILED, Status.SUPERSEDED
FINAL_STATUSES = frozenset(FINAL)
OPEN_STATUSES = OPEN
ALL_STATUSES = (*OPEN, *FINAL)
OUTPUT_LEASE_SECONDS = 120.0  # longer than any one write of an output (a download is bounded far below)


class KeyRecord(NamedTuple):
    """Per source key: the newest version seen (its job and padded sequencer), and who writes its outputs."""

    job_id: str | None = None
    sequencer: str | None = None
    writer: str | None = None

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> KeyRecord:
        def text(name: str) -> str | None:
            return str(_deserialize(item[name])) if name in item else None

        return cls(text("job_id"), text("sequencer"), text("writer"))


class Lease(StrEnum):
    """Whether a job may write its key's outputs now."""

    OK = "ok"
    SUPERSEDED = "superseded"  # a newer version of the key owns its outputs
    BUSY = "busy"  # another job is writing them right now


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


def _present(job: Job, names: Sequence[str]) -> dict[str, Any]:
    """The job's values for these attributes, leaving out those it does not have."""
    return {name: getattr(job, name) for name in names if getattr(job, name, None) is not None}


def _ref(job_id: str, attempt: int = 0, *, status: str = "", request_id: str | None = None) -> Job:
    """A job as a caller that knows only some of it acted on it (for the transition's guards)."""
    return Job(job_id=job_id, bucket="", key="", version="", status=status, attempt=attempt, request_id=request_id)


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

    def latest_record(self, bucket: str, key: str) -> KeyRecord:
        """The key record: the newest version seen (its job and padded sequencer), or an empty one."""
        item = self._call("get_item", Key={TABLE_PARTITION_KEY: {"S": _key_pk(bucket, key)}}, ConsistentRead=True)
        return KeyRecord.of(item.get("Item") or {})

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

    def note_newest(self, bucket: str, key: str, sequencer: str, job_id: str, now: float) -> KeyRecord | None:
        """Like record_latest; returns the key record as it was before (empty if new), or None if superseded.

        The previous record says which job this version replaces, so it can be told.
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
        return KeyRecord.of(reply.get("Attributes", {}))

    def lease_output(
        self, bucket: str, key: str, job_id: str, now: float, seconds: float = OUTPUT_LEASE_SECONDS
    ) -> str:
        """Take the right to write the key's outputs (cutout, report): ``ok``, ``superseded`` or ``busy``.

        Checked at the moment of writing, on the key record itself: only the job the record names
        as the newest version may write (``superseded`` otherwise), and only one writer at a time
        (``busy`` while another job's lease runs). A lease that outlives its holder expires.
        """
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": _key_pk(bucket, key)}},
                UpdateExpression="SET #w = :j, #wu = :until, #u = :now",
                ConditionExpression=(
                    "(attribute_not_exists(#j) OR #j = :j) AND (attribute_not_exists(#w) OR #w = :j OR #wu < :now)"
                ),
                ExpressionAttributeNames={"#w": "writer", "#wu": "writer_until", "#u": "updated_at", "#j": "job_id"},
                ExpressionAttributeValues={
                    ":j": {"S": job_id},
                    ":until": _serialize(now + seconds),
                    ":now": _serialize(now),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise JobStoreError(f"DynamoDB update failed: {_error_code(exc)}") from exc
            newest = (exc.response.get("Item") or {}).get("job_id")
            newest_id = self.latest_job_for(bucket, key) if newest is None else _deserialize(newest)
            return Lease.SUPERSEDED if newest_id not in (None, job_id) else Lease.BUSY
        return Lease.OK

    def release_output(self, bucket: str, key: str, job_id: str) -> None:
        """Give the lease back (only this job's own: a lease that expired and moved on stays)."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": _key_pk(bucket, key)}},
                UpdateExpression="REMOVE #w, #wu",
                ConditionExpression="#w = :j",
                ExpressionAttributeNames={"#w": "writer", "#wu": "writer_until"},
                ExpressionAttributeValues={":j": {"S": job_id}},
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise JobStoreError(f"DynamoDB update failed: {_error_code(exc)}") from exc

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

    # --- job transitions (job_states.TRANSITIONS, nothing else) ------------------------------

    def claim(
        self, job: Job, now: float, lease_seconds: float, *, as_status: str = SUBMITTING, take_from: str = RETRY
    ) -> bool:
        """Create the job in SUBMITTING (or WAITING), or take it back from RETRY (or WAITING).

        One conditional write either way. Taking a job back gives it the next attempt number, so
        a callback URL of an earlier run can never match again, and keeps its retry budget.
        """
        name = "take_over" if take_from == WAITING else "wait" if as_status == WAITING else "claim"
        values: dict[str, Any] = {} if name == "take_over" else _present(job, TRANSITIONS[name].sets)
        if as_status == SUBMITTING:
            values["lease_until"] = now + lease_seconds
        written = self.apply(name, job, now, values, keeps={"created_at": now, "tries": 1})
        if written is not None:
            job.status, job.attempt = Status(as_status), int(written.get("attempt", job.attempt))
            job.tries, job.created_at = int(written.get("tries", job.tries)), float(written.get("created_at", now))
            job.request_id = None
        return written is not None

    def mark_submitted(
        self, job_id: str, attempt: int, request_id: str, now: float, content_hash: str | None = None
    ) -> bool:
        """The gateway accepted: record its request id (and the source's hash, for de-duplication)."""
        values = {"request_id": request_id, "submitted_at": now} | (
            {"content_hash": content_hash} if content_hash else {}
        )
        return self.apply("submitted", _ref(job_id, attempt), now, values) is not None

    def mark_in_doubt(self, job_id: str, attempt: int, now: float, error: str) -> bool:
        return self.apply("in_doubt", _ref(job_id, attempt), now, {"error": error}) is not None

    def release(self, job_id: str, attempt: int, now: float, error: str, to_status: str = RETRY) -> bool:
        """Nothing was sent (the gateway refused for now, or a check failed): hand the job back."""
        name = {RETRY: "release", RESUBMIT: "release_for_resubmit", IN_DOUBT: "release_in_doubt"}[Status(to_status)]
        return self.apply(name, _ref(job_id, attempt), now, {"error": error}) is not None

    def adopt(self, job_id: str, attempt: int, request_id: str, now: float) -> bool:
        """A genuine callback names the request of a submission whose answer we never saw."""
        return (
            self.apply("adopt", _ref(job_id, attempt), now, {"request_id": request_id, "submitted_at": now}) is not None
        )

    def touch(self, job_id: str, status: str, now: float) -> bool:
        return self.apply("touch", _ref(job_id, status=status), now, {}) is not None

    def mark_resubmit(self, job_id: str, request_id: str, now: float, error: str | None) -> bool:
        ref = _ref(job_id, request_id=request_id)
        return self.apply("gateway_error", ref, now, {"error": error or "gateway reported ERROR"}) is not None

    def claim_resubmission(self, job: Job, now: float, lease_seconds: float) -> bool:
        """Move a job from RESUBMIT or IN_DOUBT to SUBMITTING with the next attempt number."""
        return self.apply("resubmission", job, now, {"lease_until": now + lease_seconds}) is not None

    def mark_completed(self, job: Job, now: float, output_key: str, from_cache: bool = False) -> bool:
        """End a job COMPLETED: from SUBMITTED (its request), late from a timed-out FAILED, or from cache.

        A cache hit costs no POST, so it needs no claim: the job is created COMPLETED if it does
        not exist yet, or ended from RETRY (the queue brought it back) or WAITING (it waited for
        the job that paid for the same bytes).
        """
        values: dict[str, Any] = {
            "finished_at": now,
            "output_key": output_key,
            "expires_at": int(now) + self._ttl_seconds,
        }
        if from_cache:
            values |= _present(job, (*IDENTITY, "content_hash")) | {"from_cache": True}
            keeps = {"created_at": job.created_at or now, "attempt": job.attempt, "tries": job.tries}
            return self.apply("complete_from_cache", job, now, values, keeps=keeps) is not None
        name = "complete_late" if job.status == FAILED else "complete"
        return self.apply(name, job, now, values) is not None

    def mark_final(self, job: Job, status: str, now: float, reason: str, error: str) -> bool:
        """End a job as FAILED or SUPERSEDED, from the state and attempt the caller last saw it in."""
        values = {
            "finished_at": now,
            "reason": reason,
            "error": error[:1000],
            "expires_at": int(now) + self._ttl_seconds,
        }
        return self.apply("fail" if status == FAILED else "supersede", job, now, values) is not None

    def reopen(self, job: Job, now: float) -> bool:
        """Let a finished job be claimed again (operator retry after fixing the cause).

        The retry budget starts afresh, but the attempt number moves on and the old request is
        forgotten: a late callback of the failed run can neither fail nor complete the new one.
        """
        return self.apply("reopen", job, now, {"reopened_at": now, "tries": 1}) is not None

    def note_error(self, job: Job, now: float, error: str) -> int:
        """Count a reconcile pass that failed on this job, and send it to the back of the line.

        Returns the count so far, or 0 if the job moved on meanwhile (nothing to count).
        """
        written = self.apply("note_error", job, now, {"error": error[:1000]})
        return int(written.get("errors", 1)) if written is not None else 0

    def tell_superseded(self, job_id: str, by_job_id: str, now: float) -> bool:
        """Tell an older version's job that a newer one owns the output key now."""
        return self.apply("tell_superseded", _ref(job_id), now, {"superseded_by": by_job_id}) is not None

    def apply(
        self, name: str, job: Job, now: float, values: Mapping[str, Any], keeps: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Write one transition of the table as one conditional update; the new values, or None if refused."""
        transition = TRANSITIONS[name]
        unknown = set(values) - set(transition.sets)
        if unknown:
            raise ValueError(f"transition {name!r} does not write {sorted(unknown)}")
        names: dict[str, str] = {"#status": "status", "#updated_at": "updated_at", "#pk": TABLE_PARTITION_KEY}
        attr_values: dict[str, Any] = {":updated_at": _serialize(now)}
        sets = ["#updated_at = :updated_at"]
        if transition.target is not None:
            attr_values[":target"] = _serialize(str(transition.target))
            sets.append("#status = :target")
        for i, (field, value) in enumerate(values.items()):
            names[f"#s{i}"], attr_values[f":s{i}"] = field, _serialize(value)
            sets.append(f"#s{i} = :s{i}")
        for i, field in enumerate(transition.keeps):
            if keeps and field in keeps:
                names[f"#k{i}"], attr_values[f":k{i}"] = field, _serialize(keeps[field])
                sets.append(f"#k{i} = if_not_exists(#k{i}, :k{i})")
        if transition.counts:
            attr_values[":zero"], attr_values[":one"] = {"N": "0"}, {"N": "1"}
        for i, field in enumerate(transition.counts):
            names[f"#c{i}"] = field
            sets.append(f"#c{i} = if_not_exists(#c{i}, :zero) + :one")
        expression = "SET " + ", ".join(sets)
        if transition.removes:
            for i, field in enumerate(transition.removes):
                names[f"#r{i}"] = field
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(transition.removes)))
        condition = self._condition(transition.sources, transition.guards, job, names, attr_values)
        used = expression + " " + condition
        names = {token: field for token, field in names.items() if re.search(f"{token}\\b", used)}
        try:
            reply = self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": _job_pk(job.job_id)}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attr_values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise JobStoreError(f"DynamoDB update failed: {_error_code(exc)}") from exc
        return {field: _deserialize(attr) for field, attr in reply.get("Attributes", {}).items()}

    @staticmethod
    def _condition(
        sources: tuple[str, ...], guards: tuple[Guard, ...], job: Job, names: dict[str, str], values: dict[str, Any]
    ) -> str:
        """``(status in sources AND guards)``, or also ``no record yet`` when NEW is a source."""
        states = [state for state in sources if state != NEW]
        parts = []
        if states:
            for i, state in enumerate(states):
                values[f":from{i}"] = _serialize(str(state))
            either = " OR ".join(f"#status = :from{i}" for i in range(len(states)))
            parts.append(f"({either})" if len(states) > 1 else either)
        for guard in guards:
            if guard is Guard.SEEN:
                values[":seen"] = _serialize(str(job.status))
                parts.append("#status = :seen")
            elif guard is Guard.ATTEMPT:
                names["#attempt"], values[":attempt"] = "attempt", _serialize(job.attempt)
                parts.append("#attempt = :attempt")
            elif guard is Guard.REQUEST:
                names["#request_id"], values[":request_id"] = "request_id", _serialize(job.request_id or "")
                parts.append("#request_id = :request_id")
            elif guard is Guard.NO_REQUEST:
                names["#request_id"] = "request_id"
                parts.append("attribute_not_exists(#request_id)")
            elif guard is Guard.CURRENT:
                names["#superseded_by"] = "superseded_by"
                parts.append("attribute_not_exists(#superseded_by)")
            elif guard is Guard.LATE:
                names["#reason"], values[":late"] = "reason", _serialize(LATE_REASON)
                parts.append("#reason = :late")
        existing = " AND ".join(parts) if parts else "attribute_exists(#pk)"
        if NEW in sources:
            if not states:
                return "attribute_not_exists(#pk)"
            return (
                f"attribute_not_exists(#pk) OR ({existing})"
                if len(parts) > 1
                else f"attribute_not_exists(#pk) OR {existing}"
            )
        return existing

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
