"""retry: send failed jobs through the pipeline again, and redrive dead-lettered uploads.

Only FAILED jobs are reopened (FAILED -> RETRY, a conditional write), so a job still in flight
(SUBMITTING, SUBMITTED, IN_DOUBT, RESUBMIT) is never submitted twice. The old failure report
stays until the retry succeeds, which removes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cutouts.job_store import FAILED, Job
from cutouts.notifications import sources_in_notification
from cutouts_cli.backfill import resolve_prefix
from cutouts_cli.s3_events import SourceVersion, head_source, notification_body, sequencer_for
from cutouts_cli.target import Clients, Target

SOURCE_GONE = "source deleted"
SOURCE_REPLACED = "a newer version was uploaded (it has its own job)"
CHANGED = "no longer FAILED"


@dataclass
class RetriedJob:
    key: str
    reason: str | None
    job_id: str


@dataclass
class RetryResult:
    dry_run: bool
    matched: int = 0
    retried: list[RetriedJob] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    dlq_moved: int = 0
    dlq_reopened: int = 0
    dlq_left_in_flight: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "matched": self.matched,
            "retried": [vars(r) for r in self.retried],
            "skipped": dict(self.skipped),
            "dlq_moved": self.dlq_moved,
            "dlq_reopened": self.dlq_reopened,
            "dlq_left_in_flight": self.dlq_left_in_flight,
        }


def matching_failures(
    clients: Clients, target: Target, now: float, reasons: list[str] | None, prefix: str | None, limit: int = 10_000
) -> list[Job]:
    key_prefix = resolve_prefix(target, prefix)
    return [
        job
        for job in clients.store().list_by_status(FAILED, updated_before=now + 1, limit=limit)
        if job.key.startswith(key_prefix) and (not reasons or job.reason in reasons)
    ]


def retry_failed(
    clients: Clients,
    target: Target,
    jobs: list[Job],
    now: float,
    dry_run: bool = False,
    region: str = "us-east-1",
    on_done: Callable[[int], None] | None = None,
) -> RetryResult:
    store, result = clients.store(), RetryResult(dry_run=dry_run, matched=len(jobs))
    for job in jobs:
        current = head_source(clients.s3, job.bucket, job.key)
        if current is None:
            result.skipped[SOURCE_GONE] += 1
        elif job.version not in (current.version_id, current.etag):
            result.skipped[SOURCE_REPLACED] += 1
        elif dry_run:
            result.retried.append(RetriedJob(job.key, job.reason, job.job_id))
        elif not store.reopen(job, now):
            result.skipped[CHANGED] += 1
        else:
            # The message carries the failed job's own identity, so the submit function claims that job.
            source = SourceVersion(job.bucket, job.key, current.size, job.etag or current.etag, job.version_id)
            body = notification_body(source, region, sequencer_for(store, source))
            clients.sqs.send_message(QueueUrl=target.queue_url, MessageBody=body)
            result.retried.append(RetriedJob(job.key, job.reason, job.job_id))
        if on_done:
            on_done(1)
    return result


def redrive_dead_letters(
    clients: Clients, target: Target, now: float, result: RetryResult, max_messages: int = 100_000
) -> RetryResult:
    """Move every visible dead-lettered message back to the upload queue, reopening its failed job.

    Receive, send, then delete: a crash in between leaves a copy on both queues, and the copy is a
    free duplicate. Messages the reconciler is looking at right now are invisible for a minute;
    they are counted in ``dlq_left_in_flight`` and a later run moves them.
    """
    store = clients.store()
    if result.dry_run:
        attrs = clients.sqs.get_queue_attributes(
            QueueUrl=target.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        result.dlq_moved = int(attrs.get("ApproximateNumberOfMessages", 0))
    while not result.dry_run and result.dlq_moved < max_messages:
        messages = clients.sqs.receive_message(
            QueueUrl=target.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            result.dlq_reopened += _reopen_failed_jobs_of(store, message.get("Body", ""), now)
            clients.sqs.send_message(QueueUrl=target.queue_url, MessageBody=message["Body"])
            clients.sqs.delete_message(QueueUrl=target.dlq_url, ReceiptHandle=message["ReceiptHandle"])
            result.dlq_moved += 1
    attrs = clients.sqs.get_queue_attributes(
        QueueUrl=target.dlq_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    result.dlq_left_in_flight = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
    return result


def _reopen_failed_jobs_of(store: Any, body: str, now: float) -> int:
    """A dead-lettered upload usually has a FAILED job (the reconciler reported it): reopen it."""
    reopened = 0
    for source in sources_in_notification(body):
        job = store.get(source.job_id)
        if job is not None and job.status == FAILED:
            reopened += int(store.reopen(job, now))
    return reopened
