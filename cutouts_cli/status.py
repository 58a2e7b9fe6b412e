"""status: what the pipeline holds right now, and what to do about what failed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from cutouts.job_store import ALL_STATUSES, FAILED, OPEN_STATUSES, Job
from cutouts.reports import advice_for
from cutouts_cli.spend import SpendFigures, collect_spend
from cutouts_cli.target import Clients, Target


def advice(reason: str) -> str:
    """What to do about a failure reason: the same advice its report gives."""
    return advice_for(reason)


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds") if epoch else None


@dataclass
class OldestOpen:
    job_id: str
    key: str
    status: str
    since: str | None
    age_seconds: int


@dataclass
class FailureGroup:
    reason: str
    count: int
    advice: str
    latest_at: str | None
    examples: list[str] = field(default_factory=list)
    last_error: str | None = None


@dataclass
class StatusReport:
    counts: dict[str, int]
    open_jobs: int
    oldest_open: OldestOpen | None
    failures: list[FailureGroup]
    failures_window_hours: float
    queue_depth: int
    queue_in_flight: int
    dlq_depth: int
    dlq_in_flight: int
    spend: SpendFigures | None = None  # today's and this month's spend against the budgets, and parked jobs

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _queue_depth(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs.get("ApproximateNumberOfMessages", 0)), int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))


def collect_status(
    clients: Clients, target: Target, now: float, since_hours: float = 24.0, max_failures: int = 1000
) -> StatusReport:
    store = clients.store()
    counts = {str(status): store.count_by_status(status) for status in ALL_STATUSES}

    # Each status index is ordered by last update, so its first job is that status's oldest.
    oldest: Job | None = None
    for status in OPEN_STATUSES:
        for job in store.list_by_status(status, updated_before=now + 1, limit=1):
            if oldest is None or (job.created_at or job.updated_at) < (oldest.created_at or oldest.updated_at):
                oldest = job
    oldest_open = None
    if oldest is not None:
        started = oldest.created_at or oldest.updated_at
        oldest_open = OldestOpen(oldest.job_id, oldest.key, oldest.status, _iso(started), int(max(0, now - started)))

    groups: dict[str, list[Job]] = defaultdict(list)
    cutoff = now - since_hours * 3600
    for job in store.list_by_status(FAILED, updated_before=now + 1, limit=max_failures):
        if job.updated_at >= cutoff:
            groups[job.reason or "unknown"].append(job)
    failures = []
    for reason, jobs in groups.items():
        jobs.sort(key=lambda j: j.updated_at, reverse=True)
        failures.append(
            FailureGroup(
                reason=reason,
                count=len(jobs),
                advice=advice(reason),
                latest_at=_iso(jobs[0].updated_at),
                examples=[j.key for j in jobs[:3]],
                last_error=jobs[0].error,
            )
        )
    failures.sort(key=lambda g: (-g.count, g.reason))

    queue_depth, queue_in_flight = _queue_depth(clients.sqs, target.queue_url)
    dlq_depth, dlq_in_flight = _queue_depth(clients.sqs, target.dlq_url)
    return StatusReport(
        counts=counts,
        open_jobs=sum(counts[s] for s in OPEN_STATUSES),
        oldest_open=oldest_open,
        failures=failures,
        failures_window_hours=since_hours,
        queue_depth=queue_depth,
        queue_in_flight=queue_in_flight,
        dlq_depth=dlq_depth,
        dlq_in_flight=dlq_in_flight,
        spend=collect_spend(store, now),
    )
