"""Completion events: one event on the account's default EventBridge bus per job end.

Other systems (a catalogue, a CMS, a notification) learn that a cutout exists, or why it does
not, without polling the bucket. The detail is documented in docs/events.md, with an example in
tests/events/.

Exactly once per end, as far as we can make it: the job's ending write also marks it
``event_pending`` (job_store, in the same conditional update), ``EventAnnouncer`` puts the event
and then clears the mark for that very end only, and the reconciler sends whatever is still
marked. A redelivered callback finds the job already ended, so its write fails and nothing is
announced twice; a failed PutEvents never touches the job, its cutout or its report. Only a crash
between a successful PutEvents and the clearing can send an end twice, and EventBridge itself
delivers at least once: consumers de-duplicate on ``detail.event_key``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from cutouts import constants as c
from cutouts.job_record import Job
from cutouts.job_states import ANNOUNCED, Status
from cutouts.keys import failure_key_for
from cutouts.reports import advice_for

DETAIL_VERSION = 1
CUTOUT_CREATED = "Cutout Created"
CUTOUT_FAILED = "Cutout Failed"
CUTOUT_PARKED = "Cutout Parked"
BUDGET_REACHED = "Budget Reached"
MAX_ENTRIES_PER_CALL = 10  # PutEvents takes at most ten entries
RETRY_AFTER_SECONDS = 60.0  # the reconciler leaves an end this long to the process that wrote it
# A rendering job's end is announced by the render function once its outputs exist; the reconciler
# announces it anyway (with the outputs that exist) after this long: runtime sets the render queue's
# whole retry window (render_events.render_retry_window), so a render still being retried is not pre-empted.
DEFERRED_FALLBACK_SECONDS = 1800.0


class OutputWritten(NamedTuple):
    """One object a job wrote. ``profile`` and ``output`` name it when output profiles exist."""

    key: str
    profile: str | None = None
    output: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "profile": self.profile, "output": self.output}


class FailedOutput(NamedTuple):
    """An output of the job's profile that was not written: its report, or None when there is none
    (the render never finished: the reconciler's late announcement, see ``EventAnnouncer.send_pending``)."""

    output: str
    report_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "report_key": self.report_key}


class EventEntry(NamedTuple):
    """One PutEvents entry, before it is sent."""

    detail_type: str
    detail: dict[str, Any]
    resources: tuple[str, ...] = ()
    time: float | None = None  # when it happened (the job's end), not when it was sent

    def to_request(self, bus_name: str = c.EVENT_BUS_NAME) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Source": c.EVENT_SOURCE,
            "DetailType": self.detail_type,
            "Detail": json.dumps(self.detail, ensure_ascii=False, sort_keys=True),
            "Resources": list(self.resources),
            "EventBusName": bus_name,
        }
        if self.time is not None:
            entry["Time"] = datetime.fromtimestamp(self.time, UTC)
        return entry


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_key(job: Job, status: str) -> str:
    """The same for every sending of one end, different for each end: consumers de-duplicate on it."""
    return f"{job.job_id}/{job.attempt}/{status}"


def _object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _job_fields(job: Job, status: str) -> dict[str, Any]:
    """What every job event says: which upload, which job, what it cost, how long it took."""
    reused = bool(job.from_cache)
    started = job.uploaded_at or job.created_at or None
    ended = job.finished_at or job.updated_at or None
    return {
        "detail_version": DETAIL_VERSION,
        "event_key": event_key(job, status),
        "job_id": job.job_id,
        "status": status,
        "bucket": job.bucket,
        "source": {"key": job.key, "version_id": job.version_id, "etag": job.etag, "version": job.version},
        "gateway_request_id": job.request_id,
        "paid": bool(job.request_id) and not reused,
        "reused": reused,
        "attempts": job.tries,
        "uploaded_at": iso(job.uploaded_at),
        "ended_at": iso(ended),
        "seconds_to_end": round(max(0.0, ended - started), 3) if started and ended else None,
    }


def cutout_created(
    job: Job, outputs: Sequence[OutputWritten] | None = None, failed: Sequence[FailedOutput] = ()
) -> EventEntry:
    """A job COMPLETED: its outputs (by default the one cutout its record names), and those that failed."""
    written = list(outputs) if outputs is not None else ([OutputWritten(job.output_key)] if job.output_key else [])
    detail = _job_fields(job, Status.COMPLETED) | {
        "outputs": [o.to_json() for o in written],
        "failed_outputs": [f.to_json() for f in failed],
    }
    resources = (_object_arn(job.bucket, job.key), *(_object_arn(job.bucket, o.key) for o in written))
    return EventEntry(CUTOUT_CREATED, detail, resources, job.finished_at)


def cutout_failed(job: Job, *, input_prefix: str, failure_prefix: str) -> EventEntry:
    """A job FAILED: the reason, the message and the advice, as its failure report has them."""
    reason = job.reason or "unknown"
    report_key = failure_key_for(job.key, input_prefix, failure_prefix)
    detail = _job_fields(job, Status.FAILED) | {
        "outputs": [],
        "failure": {"reason": reason, "message": job.error, "what_to_do": advice_for(reason), "report_key": report_key},
    }
    return EventEntry(CUTOUT_FAILED, detail, (_object_arn(job.bucket, job.key),), job.finished_at)


def cutout_parked(
    job: Job,
    *,
    reason: str,
    period: str,
    budget_usd: float,
    spent_usd: float,
    resumes_at: float | None,
    parked_at: float,
) -> EventEntry:
    """A job PARKED by the spend guard: not failed, not paid; it resumes at ``resumes_at`` (or on ``resume``)."""
    detail = _job_fields(job, "PARKED") | {
        "outputs": [],
        "ended_at": iso(parked_at),
        "parked": {
            "reason": reason,
            "what_to_do": advice_for(reason),
            "period": period,
            "budget_usd": budget_usd,
            "spent_usd": spent_usd,
            "resumes_at": iso(resumes_at),
        },
    }
    detail["event_key"] = f"{job.job_id}/{job.attempt}/PARKED/{parked_at:.3f}"
    return EventEntry(CUTOUT_PARKED, detail, (_object_arn(job.bucket, job.key),), parked_at)


def budget_reached(
    *, period: str, period_start: str, budget_usd: float, spent_usd: float, reached_at: float
) -> EventEntry:
    """The day's (``period="day"``) or month's budget is spent: jobs park until ``period_start``'s next period."""
    detail = {
        "detail_version": DETAIL_VERSION,
        "event_key": f"budget/{period}/{period_start}",
        "period": period,
        "period_start": period_start,
        "budget_usd": budget_usd,
        "spent_usd": spent_usd,
        "reached_at": iso(reached_at),
    }
    return EventEntry(BUDGET_REACHED, detail, (), reached_at)


def put_events(events: Any, entries: Sequence[EventEntry], bus_name: str = c.EVENT_BUS_NAME) -> list[str | None]:
    """Send entries (ten per call); for each, None if EventBridge took it, else why not.

    PutEvents can fail as a whole (raises) or entry by entry (``FailedEntryCount``, an
    ``ErrorCode`` in that entry's result): either way the caller learns which ones to retry.
    """
    results: list[str | None] = []
    for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
        batch = entries[start : start + MAX_ENTRIES_PER_CALL]
        try:
            reply = events.put_events(Entries=[e.to_request(bus_name) for e in batch])
        except (ClientError, BotoCoreError) as exc:
            results += [f"{type(exc).__name__}: {exc}"] * len(batch)
            continue
        answers = reply.get("Entries", [])
        for i in range(len(batch)):
            answer = answers[i] if i < len(answers) else {}
            ok = answer.get("EventId") and not answer.get("ErrorCode")
            results.append(None if ok else f"{answer.get('ErrorCode', 'NoEventId')}: {answer.get('ErrorMessage', '')}")
    return results


# What the outputs of a deferred end are, when the reconciler announces it late (render_events).
OutputsOf = Callable[[Job], tuple[Sequence[OutputWritten], Sequence[FailedOutput]]]


class EventAnnouncer:
    """Announces job ends: the job store's ``on_announced`` hook, and the reconciler's retry.

    ``defer`` (set by runtime.services once the services exist): True for a COMPLETED job whose
    outputs the render function has still to write (its record names the master). Its end is not
    announced when written: the job keeps its ``event_pending`` mark, and the render function calls
    ``announce_outputs`` with what it wrote. ``outputs_of`` (also set by runtime) lists the outputs
    that exist, for the reconciler's late announcement of a render that never came.
    """

    defer: Callable[[Job], bool] | None = None
    outputs_of: OutputsOf | None = None
    defer_for_seconds: float = DEFERRED_FALLBACK_SECONDS

    def __init__(
        self,
        events: Any,
        store: Any,
        metrics: Any,
        *,
        input_prefix: str,
        failure_prefix: str,
        clock: Callable[[], float],
        bus_name: str = c.EVENT_BUS_NAME,
        log: Callable[..., Any] | None = None,
    ) -> None:
        self._events, self._store, self._metrics = events, store, metrics
        self._prefixes = {"input_prefix": input_prefix, "failure_prefix": failure_prefix}
        self._clock, self._bus, self._log = clock, bus_name, log

    def entry_for(self, job: Job) -> EventEntry | None:
        """The event of the end the job is in, or None if that end is not announced.

        A state added to job_states.ANNOUNCED (the spend guard's PARKED) needs its branch here.
        """
        if job.status == Status.COMPLETED:
            return cutout_created(job)
        if job.status == Status.FAILED:
            return cutout_failed(job, **self._prefixes)
        return None

    def deferred(self, job: Job) -> bool:
        """Whether this end waits for the render function (see the class docstring)."""
        if self.defer is None or job.status != Status.COMPLETED:
            return False
        try:
            return bool(self.defer(job))
        except Exception:  # noqa: BLE001  (in doubt, announce now rather than never)
            return False

    def __call__(self, job: Job) -> bool:
        """Put one ended job's event, then clear its pending mark. Never raises: False if not sent (or deferred)."""
        if self.deferred(job):
            return False  # the render function announces it with its outputs; the mark stays meanwhile
        return self.announce([job]) == 1

    def announce_outputs(self, job: Job, outputs: Sequence[OutputWritten], failed: Sequence[FailedOutput]) -> bool:
        """The render function's announcement of a deferred end, naming what it wrote. Never raises.

        Only while the end ``job`` was read at is still pending: a redelivered render request or a
        ``rerender`` of a job already announced sends nothing (a rerender is not a job end).
        """
        if job.status != Status.COMPLETED or job.event_pending != Status.COMPLETED:
            return False
        try:
            entry = cutout_created(job, outputs, failed)
        except Exception as exc:  # noqa: BLE001  (an event must never fail the render)
            self._failed(1, f"{type(exc).__name__}: {exc}", job.job_id)
            return False
        return self._send([(job, entry)]) == 1

    def announce(self, jobs: Sequence[Job]) -> int:
        """Put these ended jobs' events; the number sent. A failure leaves the job marked for a retry."""
        try:
            pairs = [(job, entry) for job in jobs if (entry := self.entry_for(job)) is not None]
        except Exception as exc:  # noqa: BLE001  (an event must never block the end it reports)
            self._failed(len(jobs), f"{type(exc).__name__}: {exc}")
            return 0
        return self._send(pairs)

    def _send(self, pairs: Sequence[tuple[Job, EventEntry]]) -> int:
        try:
            results = put_events(self._events, [entry for _, entry in pairs], self._bus)
        except Exception as exc:  # noqa: BLE001  (an event must never block the end it reports)
            self._failed(len(pairs), f"{type(exc).__name__}: {exc}")
            return 0
        sent = 0
        for (job, _), problem in zip(pairs, results, strict=True):
            if problem is not None:
                self._failed(1, problem, job.job_id)
                continue
            sent += 1
            try:
                self._store.mark_event_sent(job, self._clock())
            except Exception as exc:  # noqa: BLE001  (sent once more by the reconciler: consumers de-duplicate)
                self._failed(0, f"event sent, mark not cleared: {type(exc).__name__}: {exc}", job.job_id)
        if sent:
            self._metrics.count(c.METRIC_EVENTS_SENT, sent)
        return sent

    def send_once(self, entries: Sequence[EventEntry]) -> int:
        """Put events that have no pending mark (a parked job, a budget reached); failures are counted and alarmed.

        Their writers make them once (the park transition and the budget's first-reach record are
        conditional), so a failure here is not retried: it shows on the EventsFailed metric and alarm.
        """
        try:
            results = put_events(self._events, list(entries), self._bus)
        except Exception as exc:  # noqa: BLE001  (an event must never block the job it reports)
            self._failed(len(entries), f"{type(exc).__name__}: {exc}")
            return 0
        failed = [problem for problem in results if problem is not None]
        if failed:
            self._failed(len(failed), failed[0])
        sent = len(results) - len(failed)
        if sent:
            self._metrics.count(c.METRIC_EVENTS_SENT, sent)
        return sent

    def send_pending(self, now: float, limit: int = 100) -> int:
        """The reconciler's pass: send the events of ends older than a minute still marked pending.

        A deferred end (its outputs still being rendered) is sent as soon as every output of its
        profile stands in the bucket as this job's (the render wrote them, and its own PutEvents
        failed or it died before sending). Otherwise it is left to the render function for
        ``defer_for_seconds``, and then announced anyway with the outputs that exist
        (``outputs_of``) and the others as failed: an end is never lost to a dead-lettered render.
        """
        jobs: list[Job] = []
        deferred: list[Job] = []
        for status in ANNOUNCED:
            for listed in list(self._store.pending_events(str(status), now - RETRY_AFTER_SECONDS, limit)):
                job = self._store.get(listed.job_id)  # the index lags: read the job itself before sending
                if job is None or not job.event_pending or job.event_pending != job.status:
                    continue
                (deferred if self.deferred(job) else jobs).append(job)
        sent = self.announce(jobs) if jobs else 0
        for job in deferred:
            late = (job.finished_at or job.updated_at or now) <= now - self.defer_for_seconds
            try:
                if self.outputs_of is None and not late:
                    continue
                outputs, failed = self.outputs_of(job) if self.outputs_of is not None else ((), ())
                if (failed or not outputs) and not late:
                    continue  # still rendering, or being retried: the render function announces it
                entry = cutout_created(job, outputs, failed)
            except Exception as exc:  # noqa: BLE001  (the next pass tries again)
                self._failed(1, f"{type(exc).__name__}: {exc}", job.job_id)
                continue
            sent += self._send([(job, entry)])
        return sent

    def _failed(self, count: int, problem: str, job_id: str | None = None) -> None:
        if count:
            self._metrics.count(c.METRIC_EVENTS_FAILED, count)
        if self._log is not None:
            self._log("completion event not sent; the reconciler retries", problem=problem[:500], job_id=job_id)
