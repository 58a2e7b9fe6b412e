"""backfill: put the images already in the bucket through the pipeline, as if just uploaded.

Safe to interrupt and run again: what finished meanwhile has a cutout (skipped), what is in flight
has an open job (skipped), and a message for a version that was already queued becomes a free
duplicate in the submit function (the job id is deterministic per object version).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from cutouts.job_store import COMPLETED, FAILED, OPEN_STATUSES
from cutouts.keys import output_key_for
from cutouts_cli.s3_events import SourceVersion, known_job, notification_body, send_bodies, sequencer_for
from cutouts_cli.target import Clients, Target

GATEWAY_PRICE_USD = 0.018  # Bria RMBG 2.0 on the Pixazo gateway, per accepted image

# Why an object is not enqueued (the keys of BackfillPlan.skipped).
HAS_CUTOUT = "has a cutout of its current version"
IN_FLIGHT = "in flight (job open)"
FAILED_BEFORE = "failed before (use `retry`)"
COMPLETED_BEFORE = "completed, cutout missing (use --force)"
SUPERSEDED_BEFORE = "superseded"


@dataclass
class BackfillPlan:
    prefix: str
    listed: int = 0
    to_enqueue: list[SourceVersion] = field(default_factory=list)
    to_reopen: set[str] = field(default_factory=set)  # job ids reopened first (--force)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def estimated_cost_usd(self) -> float:
        return round(len(self.to_enqueue) * GATEWAY_PRICE_USD, 2)

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self.to_enqueue)

    def summary(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "listed": self.listed,
            "to_enqueue": len(self.to_enqueue),
            "to_reopen": len(self.to_reopen),
            "skipped": dict(self.skipped),
            "total_bytes": self.total_bytes,
            "estimated_cost_usd": self.estimated_cost_usd,
            "price_per_image_usd": GATEWAY_PRICE_USD,
        }


def resolve_prefix(target: Target, prefix: str | None) -> str:
    """A narrower prefix may be given in full (uploads/2024/) or relative to the input prefix (2024/)."""
    if not prefix:
        return target.input_prefix
    return prefix if prefix.startswith(target.input_prefix) else target.input_prefix + prefix


def list_current_versions(s3: Any, bucket: str, prefix: str) -> Iterator[SourceVersion]:
    """The current version of every object under the prefix (works on unversioned buckets too)."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            if not version.get("IsLatest") or version["Key"].endswith("/"):
                continue
            version_id = version.get("VersionId")
            yield SourceVersion(
                bucket=bucket,
                key=version["Key"],
                size=int(version.get("Size", 0)),
                etag=str(version.get("ETag", "")).strip('"'),
                version_id=None if version_id in (None, "null") else version_id,
            )


def _existing_outputs(s3: Any, bucket: str, prefix: str) -> set[str]:
    found: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update(obj["Key"] for obj in page.get("Contents", []))
    return found


def _cutout_is_current(s3: Any, bucket: str, output_key: str, source: SourceVersion) -> bool:
    """The cutout's ``source-version`` metadata names the object's current version."""
    try:
        head = s3.head_object(Bucket=bucket, Key=output_key)
    except ClientError:
        return False
    recorded = unquote(head.get("Metadata", {}).get("source-version", ""))
    return recorded in {source.version, source.version_id, source.etag} - {None, ""}


def plan_backfill(
    clients: Clients,
    target: Target,
    prefix: str | None = None,
    force: bool = False,
    on_checked: Callable[[int], None] | None = None,
) -> BackfillPlan:
    plan = BackfillPlan(prefix=resolve_prefix(target, prefix))
    store = clients.store()
    outputs = _existing_outputs(clients.s3, target.bucket, target.output_prefix)
    for source in list_current_versions(clients.s3, target.bucket, plan.prefix):
        plan.listed += 1
        if on_checked:
            on_checked(plan.listed)
        output_key = output_key_for(source.key, target.input_prefix, target.output_prefix)
        if not force and output_key in outputs and _cutout_is_current(clients.s3, target.bucket, output_key, source):
            plan.skipped[HAS_CUTOUT] += 1
            continue
        source, job = known_job(store, source)
        if job is None:
            plan.to_enqueue.append(source)
        elif job.status in OPEN_STATUSES:
            plan.skipped[IN_FLIGHT] += 1  # never touched, even with --force: it may be paid for already
        elif force:
            plan.to_enqueue.append(source)
            plan.to_reopen.add(job.job_id)
        else:
            ended_as: dict[str, str] = {FAILED: FAILED_BEFORE, COMPLETED: COMPLETED_BEFORE}
            plan.skipped[ended_as.get(job.status, SUPERSEDED_BEFORE)] += 1
    return plan


@dataclass
class BackfillResult:
    enqueued: int = 0
    reopened: int = 0
    skipped_changed: int = 0  # a job that changed state between planning and enqueueing

    def summary(self) -> dict[str, int]:
        return {"enqueued": self.enqueued, "reopened": self.reopened, "skipped_changed": self.skipped_changed}


def run_backfill(
    clients: Clients,
    target: Target,
    plan: BackfillPlan,
    now: float,
    on_sent: Callable[[int], None] | None = None,
    region: str = "us-east-1",
) -> BackfillResult:
    """Enqueue the plan, ten messages per batch; each batch is complete before the next starts."""
    store, result, batch = clients.store(), BackfillResult(), []
    for source in plan.to_enqueue:
        if source.job_id in plan.to_reopen:
            job = store.get(source.job_id)
            if job is None or job.status in OPEN_STATUSES or not store.reopen(job, now):
                result.skipped_changed += 1
                if on_sent:
                    on_sent(1)
                continue
            result.reopened += 1
        batch.append(notification_body(source, region, sequencer_for(store, source)))
        if len(batch) == 10:
            result.enqueued += send_bodies(clients.sqs, target.queue_url, batch)
            if on_sent:
                on_sent(len(batch))
            batch = []
    result.enqueued += send_bodies(clients.sqs, target.queue_url, batch)
    if on_sent and batch:
        on_sent(len(batch))
    return result
