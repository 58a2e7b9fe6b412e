"""resume: send parked jobs on before the next UTC day (or month) opens, e.g. after raising the budget.

A parked job goes back to RETRY (a conditional write from PARKED, so a job the reconciler is
resuming right now is left alone) and its upload is enqueued again, oldest parked first. The
submit function then treats it as new: it reads the source again and reserves its price, so
the budget still holds; a job beyond it is parked again, not paid.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cutouts.job_store import PARKED, Job
from cutouts_cli.backfill import resolve_prefix
from cutouts_cli.s3_events import SourceVersion, head_source, notification_body, sequencer_for
from cutouts_cli.target import Clients, Target

SOURCE_GONE = "source deleted"
SOURCE_REPLACED = "a newer version was uploaded (it has its own job)"
CHANGED = "no longer parked"


@dataclass
class ResumedJob:
    key: str
    job_id: str
    parked_reason: str | None


@dataclass
class ResumeResult:
    dry_run: bool
    matched: int = 0
    resumed: list[ResumedJob] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "matched": self.matched,
            "resumed": [vars(r) for r in self.resumed],
            "skipped": dict(self.skipped),
        }


def parked_jobs(clients: Clients, target: Target, now: float, prefix: str | None, limit: int = 100_000) -> list[Job]:
    """Parked jobs under the prefix, oldest parked first (the status index's order)."""
    key_prefix = resolve_prefix(target, prefix)
    return [
        job
        for job in clients.store().list_by_status(PARKED, updated_before=now + 1, limit=limit)
        if job.key.startswith(key_prefix)
    ]


def resume_parked(
    clients: Clients, target: Target, jobs: list[Job], now: float, dry_run: bool = False, region: str = "us-east-1"
) -> ResumeResult:
    store, result = clients.store(), ResumeResult(dry_run=dry_run, matched=len(jobs))
    for job in jobs:
        current = head_source(clients.s3, job.bucket, job.key)
        if current is None:
            result.skipped[SOURCE_GONE] += 1
        elif job.version not in (current.version_id, current.etag):
            result.skipped[SOURCE_REPLACED] += 1  # the reconciler supersedes it (the newer job is the one to pay)
        elif dry_run:
            result.resumed.append(ResumedJob(job.key, job.job_id, job.parked_reason))
        elif not store.resume_to_retry(job, now):
            result.skipped[CHANGED] += 1
        else:
            source = SourceVersion(job.bucket, job.key, current.size, job.etag or current.etag, job.version_id)
            body = notification_body(source, region, sequencer_for(store, source))
            clients.sqs.send_message(QueueUrl=target.queue_url, MessageBody=body)
            result.resumed.append(ResumedJob(job.key, job.job_id, job.parked_reason))
    return result
