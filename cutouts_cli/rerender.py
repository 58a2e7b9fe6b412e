"""``rerender``: derive every output again from the kept masters, after the profiles changed.

Design: the CLI lists the masters (``<work>masters/<prefix>``) and puts one render request per
master on the render queue, exactly what the webhook does after a paid result; the deployed
render function writes the outputs under the key's output lease (only the key's newest job
writes) with the profiles deployed now. No path of it calls the gateway: a master is the paid
result itself. The CLI then waits, with progress, until each expected output (from the profiles
file the stack was synthesized from) was written after the request went out, or has a report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cutouts.keys import relative_key
from cutouts.masters import masters_prefix, output_report_key, source_key_of_master
from cutouts.profiles import PROFILE_METADATA_KEY, Profiles, UnknownProfile, output_key
from cutouts.render_requests import RENDER, RenderRequest, send_request


@dataclass(frozen=True)
class RenderTarget:
    bucket: str
    render_queue_url: str
    input_prefix: str
    output_prefix: str
    failure_prefix: str
    work_prefix: str


@dataclass(frozen=True)
class Master:
    key: str  # the master's key
    source_key: str
    job_id: str
    profile: str  # the profile the master is rendered with now


@dataclass
class RerenderResult:
    masters: int = 0
    requested: int = 0
    expected_outputs: int = 0
    written: list[str] = field(default_factory=list)
    failed_outputs: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # outputs neither written nor reported in time
    skipped: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "masters": self.masters,
            "requested": self.requested,
            "expected_outputs": self.expected_outputs,
            "outputs_written": len(self.written),
            "outputs_failed": len(self.failed_outputs),
            "outputs_not_seen": len(self.waiting),
            "skipped": self.skipped,
            "gateway_calls": 0,  # rendering reads masters only; nothing here or in the render function calls it
        }


def list_masters(
    s3: Any,
    target: RenderTarget,
    profiles: Profiles,
    prefix: str | None,
    only_profile: str | None,
    latest_job_for: Callable[[str, str], str | None] = lambda bucket, key: None,
) -> Iterator[Master | str]:
    """Each master under the prefix, with the profile it renders with now; a string says why one is skipped.

    A master whose job is no longer the key's newest (a newer upload failed, or is still running)
    is skipped: the render function would refuse it under the key's output lease anyway.
    """
    relative_prefix = prefix or ""
    if relative_prefix.startswith(target.input_prefix):
        relative_prefix = relative_prefix[len(target.input_prefix) :]
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=target.bucket, Prefix=masters_prefix(target.work_prefix, relative_prefix)):
        for obj in page.get("Contents", []):
            source = source_key_of_master(obj["Key"], target.input_prefix, target.work_prefix)
            if source is None:
                yield "not a master's key"
                continue
            metadata = s3.head_object(Bucket=target.bucket, Key=obj["Key"]).get("Metadata", {})
            job_id = metadata.get("job-id")
            if not job_id:
                yield "master without a job id"
                continue
            try:
                profile = profiles.choose(relative_key(source, target.input_prefix), metadata.get(PROFILE_METADATA_KEY))
            except UnknownProfile:  # the upload's named profile was removed: the key's match decides now
                profile = profiles.choose(relative_key(source, target.input_prefix))
            if only_profile and profile.name != only_profile:
                yield f"profile is not {only_profile}"
                continue
            if latest_job_for(target.bucket, source) not in (None, job_id):
                yield "a newer upload of the key owns its outputs"
                continue
            yield Master(obj["Key"], source, job_id, profile.name)


def rerender(
    clients: Any,
    target: RenderTarget,
    profiles: Profiles,
    *,
    prefix: str | None,
    only_profile: str | None,
    dry_run: bool,
    timeout: float,
    progress: Callable[[int, int], None] = lambda done, total: None,
    poll_seconds: float = 1.0,
) -> RerenderResult:
    if only_profile and only_profile not in profiles.profiles:
        raise UnknownProfile(only_profile, list(profiles.profiles))
    result = RerenderResult(dry_run=dry_run)
    masters: list[Master] = []
    store = clients.store()
    for found in list_masters(clients.s3, target, profiles, prefix, only_profile, store.latest_job_for):
        if isinstance(found, str):
            result.skipped[found] = result.skipped.get(found, 0) + 1
        else:
            masters.append(found)
    result.masters = len(masters)
    expected = {m.source_key: _expected(m, target, profiles) for m in masters}
    result.expected_outputs = sum(len(v) for v in expected.values())
    if dry_run:
        return result
    started = time.time() - 1  # S3 times have whole seconds
    for master in masters:
        request = RenderRequest(RENDER, target.bucket, master.source_key, master.job_id, master.profile, rerender=True)
        send_request(clients.sqs, target.render_queue_url, request)
        result.requested += 1
    _wait(clients.s3, target, expected, started, result, timeout, progress, poll_seconds)
    return result


def _expected(master: Master, target: RenderTarget, profiles: Profiles) -> list[tuple[str, str]]:
    relative = relative_key(master.source_key, target.input_prefix)
    return [
        (
            output_key(target.output_prefix, relative, spec),
            output_report_key(master.source_key, target.input_prefix, target.failure_prefix, spec.name),
        )
        for spec in profiles.profiles[master.profile].outputs
    ]


def _wait(
    s3: Any,
    target: RenderTarget,
    expected: dict[str, list[tuple[str, str]]],
    started: float,
    result: RerenderResult,
    timeout: float,
    progress: Callable[[int, int], None],
    poll_seconds: float,
) -> None:
    pending = {pair for pairs in expected.values() for pair in pairs}
    total = len(pending)
    deadline = time.monotonic() + timeout
    while pending:
        for out_key, report_key in sorted(pending):
            if _written_since(s3, target.bucket, out_key, started):
                result.written.append(out_key)
                pending.discard((out_key, report_key))
            elif _written_since(s3, target.bucket, report_key, started):
                result.failed_outputs.append(out_key)
                pending.discard((out_key, report_key))
        progress(total - len(pending), total)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(poll_seconds)
    result.waiting = sorted(out for out, _ in pending)


def _written_since(s3: Any, bucket: str, key: str, since: float) -> bool:
    from cutouts.s3_objects import head_or_none

    head = head_or_none(s3, bucket, key)
    return head is not None and head["LastModified"].timestamp() >= since
