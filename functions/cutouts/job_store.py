"""The job table: the only module that talks to DynamoDB about jobs.

One item per source object version (``job#<id>``), beside the side records of ``key_records``.
A job changes only through a transition of ``job_states.TRANSITIONS``, written as one
conditional update, so duplicate deliveries, a webhook racing the reconciler, or a late callback
find the condition false and change nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from cutouts.constants import (
    CONTENT_INDEX_NAME,
    CONTENT_INDEX_PARTITION_KEY,
    EVENTS_INDEX_NAME,
    EVENTS_INDEX_PARTITION_KEY,
    STATUS_INDEX_NAME,
    TABLE_PARTITION_KEY,
)
from cutouts.job_record import (  # noqa: F401  (Job and JobStoreError are imported from here)
    Job,
    JobStoreError,
    deserialize,
    error_code,
    job_from_values,
    job_pk,
    job_ref,
    present,
    serialize,
    to_job,
)
from cutouts.job_states import (
    ANNOUNCED,
    EVENT_PENDING,
    FINAL,
    IDENTITY,
    LATE_REASON,
    NEW,
    OPEN,
    TRANSITIONS,
    Guard,
    Status,
)
from cutouts.key_records import KeyRecord, KeyRecords, Lease  # noqa: F401  (re-exported)
from cutouts.spend_records import SpendRecords

# The states live in job_states (with every transition); these names are what callers import.
SUBMITTING, SUBMITTED, IN_DOUBT = Status.SUBMITTING, Status.SUBMITTED, Status.IN_DOUBT
RETRY, RESUBMIT, WAITING = Status.RETRY, Status.RESUBMIT, Status.WAITING
COMPLETED, FAILED, SUPERSEDED = Status.COMPLETED, Status.FAILED, Status.SUPERSEDED
PARKED = Status.PARKED
FINAL_STATUSES = frozenset(FINAL)
OPEN_STATUSES = OPEN
ALL_STATUSES = (*OPEN, *FINAL)


class JobStore(KeyRecords, SpendRecords):
    # Called with the job after every write that entered an announced end (job_states.ANNOUNCED):
    # the one hook every ending path shares (job_events.EventAnnouncer). None: nobody listens.
    on_announced: Callable[[Job], object] | None = None

    # --- reads -----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        item = self._call("get_item", Key={TABLE_PARTITION_KEY: {"S": job_pk(job_id)}}, ConsistentRead=True)
        found = item.get("Item")
        return to_job(found) if found and "job_id" in found else None

    def list_by_status(self, status: str, updated_before: float, limit: int = 100) -> Iterator[Job]:
        """Jobs in ``status`` last touched before ``updated_before``, oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": STATUS_INDEX_NAME,
            "KeyConditionExpression": "#s = :s AND #u < :t",
            "ExpressionAttributeNames": {"#s": "status", "#u": "updated_at"},
            "ExpressionAttributeValues": {":s": {"S": status}, ":t": serialize(float(updated_before))},
        }
        seen = 0
        while seen < limit:
            page = self._call_raw("query", **kwargs, Limit=min(100, limit - seen))
            for item in page.get("Items", []):
                seen += 1
                yield to_job(item)
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
                yield to_job(item)
                if seen >= limit:
                    return
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def pending_events(self, status: str, updated_before: float, limit: int = 100) -> Iterator[Job]:
        """Jobs that ended in ``status`` before ``updated_before`` and whose event is not sent yet, oldest first.

        The by_event_pending index is sparse: a job is in it only between its end and its event.
        """
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": EVENTS_INDEX_NAME,
            "KeyConditionExpression": "#p = :p AND #u < :t",
            "ExpressionAttributeNames": {"#p": EVENTS_INDEX_PARTITION_KEY, "#u": "updated_at"},
            "ExpressionAttributeValues": {":p": {"S": status}, ":t": serialize(float(updated_before))},
        }
        seen = 0
        while seen < limit:
            page = self._call_raw("query", **kwargs, Limit=min(100, limit - seen))
            for item in page.get("Items", []):
                seen += 1
                yield to_job(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- job transitions (job_states.TRANSITIONS, nothing else) ------------------------------

    def claim(
        self, job: Job, now: float, lease_seconds: float, *, as_status: str = SUBMITTING, take_from: str = RETRY
    ) -> bool:
        """Create the job in SUBMITTING (or WAITING), or take it back from RETRY (or WAITING).

        One conditional write either way. Taking a job back gives it the next attempt number, so
        a callback URL of an earlier run can never match again, and keeps its retry budget.
        """
        name = "take_over" if take_from == WAITING else "wait" if as_status == WAITING else "claim"
        values: dict[str, Any] = {} if name == "take_over" else present(job, TRANSITIONS[name].sets)
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
        return self.apply("submitted", job_ref(job_id, attempt), now, values) is not None

    def mark_in_doubt(self, job_id: str, attempt: int, now: float, error: str) -> bool:
        return self.apply("in_doubt", job_ref(job_id, attempt), now, {"error": error}) is not None

    def release(self, job_id: str, attempt: int, now: float, error: str, to_status: str = RETRY) -> bool:
        """Nothing was sent (the gateway refused for now, or a check failed): hand the job back."""
        name = {RETRY: "release", RESUBMIT: "release_for_resubmit", IN_DOUBT: "release_in_doubt"}[Status(to_status)]
        return self.apply(name, job_ref(job_id, attempt), now, {"error": error}) is not None

    def park(self, job_id: str, attempt: int, now: float, reason: str, error: str) -> bool:
        """The budget has no room for this attempt's POST: keep the job, unsent and unpaid, until it has."""
        values = {"error": error, "parked_reason": reason, "parked_at": now}
        return self.apply("park", job_ref(job_id, attempt), now, values) is not None

    def unpark(self, job: Job, now: float, lease_seconds: float) -> bool:
        """Take a parked job (as the caller read it) to SUBMITTING with the next attempt number."""
        written = self.apply("unpark", job, now, {"lease_until": now + lease_seconds, "resumed_at": now})
        if written is not None:
            job.status, job.attempt = SUBMITTING, int(written.get("attempt", job.attempt + 1))
            job.request_id, job.resumed_at, job.parked_reason = None, now, None
        return written is not None

    def resume_to_retry(self, job: Job, now: float) -> bool:
        """An operator's resume: a parked job goes back to RETRY, for the message the CLI enqueues."""
        return self.apply("resume", job, now, {"reopened_at": now, "resumed_at": now}) is not None

    def adopt(self, job_id: str, attempt: int, request_id: str, now: float) -> bool:
        """A genuine callback names the request of a submission whose answer we never saw."""
        return (
            self.apply("adopt", job_ref(job_id, attempt), now, {"request_id": request_id, "submitted_at": now})
            is not None
        )

    def touch(self, job_id: str, status: str, now: float) -> bool:
        return self.apply("touch", job_ref(job_id, status=status), now, {}) is not None

    def mark_resubmit(self, job_id: str, request_id: str, now: float, error: str | None) -> bool:
        ref = job_ref(job_id, request_id=request_id)
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
            values |= present(job, (*IDENTITY, "content_hash", "uploaded_at")) | {"from_cache": True}
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

    def reinstate(self, job: Job, now: float) -> bool:
        """The key record names this job as the newest again: forget that it was superseded."""
        return self.apply("reinstate", job, now, {}) is not None

    def tell_superseded(self, job_id: str, by_job_id: str, now: float) -> bool:
        """Tell an older version's job that a newer one owns the output key now."""
        return self.apply("tell_superseded", job_ref(job_id), now, {"superseded_by": by_job_id}) is not None

    def mark_event_sent(self, job: Job, now: float) -> bool:
        """The end ``job`` was read at is on the bus: clear its pending mark (not a later end's)."""
        return self.apply("event_sent", job, now, {}) is not None

    def apply(
        self, name: str, job: Job, now: float, values: Mapping[str, Any], keeps: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Write one transition of the table as one conditional update; the new values, or None if refused."""
        transition = TRANSITIONS[name]
        unknown = set(values) - set(transition.sets)
        if unknown:
            raise ValueError(f"transition {name!r} does not write {sorted(unknown)}")
        names: dict[str, str] = {"#status": "status", "#updated_at": "updated_at", "#pk": TABLE_PARTITION_KEY}
        attr_values: dict[str, Any] = {":updated_at": serialize(now)} if transition.touches else {}
        sets = ["#updated_at = :updated_at"] if transition.touches else []
        if transition.target is not None:
            attr_values[":target"] = serialize(str(transition.target))
            sets.append("#status = :target")
        announced = transition.target in ANNOUNCED
        if announced:  # written with the end itself, so no end goes unannounced (job_events)
            names["#event_pending"] = EVENT_PENDING
            sets.append("#event_pending = :target")
        for i, (field, value) in enumerate(values.items()):
            names[f"#s{i}"], attr_values[f":s{i}"] = field, serialize(value)
            sets.append(f"#s{i} = :s{i}")
        for i, field in enumerate(transition.keeps):
            if keeps and field in keeps:
                names[f"#k{i}"], attr_values[f":k{i}"] = field, serialize(keeps[field])
                sets.append(f"#k{i} = if_not_exists(#k{i}, :k{i})")
        if transition.counts:
            attr_values[":zero"], attr_values[":one"] = {"N": "0"}, {"N": "1"}
        for i, field in enumerate(transition.counts):
            names[f"#c{i}"] = field
            sets.append(f"#c{i} = if_not_exists(#c{i}, :zero) + :one")
        expression = "SET " + ", ".join(sets) if sets else ""
        if transition.removes:
            for i, field in enumerate(transition.removes):
                names[f"#r{i}"] = field
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(transition.removes)))
        expression = expression.strip()
        condition = self._condition(transition.sources, transition.guards, job, names, attr_values)
        used = expression + " " + condition
        names = {token: field for token, field in names.items() if re.search(f"{token}\\b", used)}
        try:
            reply = self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": job_pk(job.job_id)}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attr_values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise JobStoreError(f"DynamoDB update failed: {error_code(exc)}") from exc
        written = {field: deserialize(attr) for field, attr in reply.get("Attributes", {}).items()}
        if announced and self.on_announced is not None:
            self._announce(written)
        return written

    def _announce(self, written: Mapping[str, Any]) -> None:
        # The end is written and marked pending: if this raises, the reconciler sends its event.
        # An event must never undo or block the end it reports.
        with contextlib.suppress(Exception):
            self.on_announced(job_from_values(written))  # type: ignore[misc]

    @staticmethod
    def _condition(
        sources: tuple[str, ...], guards: tuple[Guard, ...], job: Job, names: dict[str, str], values: dict[str, Any]
    ) -> str:
        """``(status in sources AND guards)``, or also ``no record yet`` when NEW is a source."""
        states = [state for state in sources if state != NEW]
        parts = []
        if states:
            for i, state in enumerate(states):
                values[f":from{i}"] = serialize(str(state))
            either = " OR ".join(f"#status = :from{i}" for i in range(len(states)))
            parts.append(f"({either})" if len(states) > 1 else either)
        for guard in guards:
            if guard is Guard.SEEN:
                values[":seen"] = serialize(str(job.status))
                parts.append("#status = :seen")
            elif guard is Guard.ATTEMPT:
                names["#attempt"], values[":attempt"] = "attempt", serialize(job.attempt)
                parts.append("#attempt = :attempt")
            elif guard is Guard.REQUEST:
                names["#request_id"], values[":request_id"] = "request_id", serialize(job.request_id or "")
                parts.append("#request_id = :request_id")
            elif guard is Guard.NO_REQUEST:
                names["#request_id"] = "request_id"
                parts.append("attribute_not_exists(#request_id)")
            elif guard is Guard.CURRENT:
                names["#superseded_by"] = "superseded_by"
                parts.append("attribute_not_exists(#superseded_by)")
            elif guard is Guard.ENDED:
                names["#finished_at"], values[":finished_at"] = "finished_at", serialize(job.finished_at or 0.0)
                parts.append("#finished_at = :finished_at")
            elif guard is Guard.LATE:
                names["#reason"], values[":late"] = "reason", serialize(LATE_REASON)
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
