"""Single flight: identical bytes uploaded together are paid for once.

The first job to claim a content hash (a conditional write on ``content#<sha256>``) is the one
that pays. A job that finds another owner waits (WAITING) and copies the owner's cutout when it
lands: the owner's completion hands it on at once (``hand_on``), and the reconciler looks at
every waiting job on each pass (``follow_owner``). If the owner failed for a reason the same bytes
would meet again (the model failed, the gateway refused the account or the request), the waiters
end with the same reason; if it ended in a way another try could fix (timed out, gave up on
429s, dead-lettered, its own source deleted or overwritten), one waiter takes over and pays. A
waiting job has the same maximum age as any job: nothing waits forever.
"""

from __future__ import annotations

from typing import NamedTuple

from cutouts.content_cache import copy_cutout_from
from cutouts.job_store import COMPLETED, FAILED, WAITING, Job
from cutouts.observability import logger
from cutouts.outcomes import Outcome, fail_job
from cutouts.services import Services

# Failures the same bytes would meet again: a waiter ends with the owner's reason.
SHARED_FAILURES = frozenset(
    {
        "model-failed",
        "bad-output",
        "gateway-bad-request",
        "gateway-unauthorized",
        "gateway-forbidden",
        "gateway-not-found",
        "gateway-insufficient-balance",
        "gateway-key-missing",
    }
)
# An owner claimed the bytes but has no job record yet: give its submit function this long.
OWNER_START_SECONDS = 120.0
HAND_ON_LIMIT = 25  # waiters finished by the owner's own invocation; the reconciler does the rest


class Waited(NamedTuple):
    result: Outcome
    detail: str


def wait_or_pay(job: Job, services: Services, now: float) -> Waited | None:
    """At submit, before the claim: None if this job pays for its bytes, else what became of it."""
    assert job.content_hash is not None
    owner_id, since = services.store.claim_content(job.content_hash, job.job_id, now)
    if owner_id == job.job_id:
        return None
    return follow_owner(job, owner_id, since, services, now, stored=False)


def follow_owner(
    job: Job, owner_id: str, since: float, services: Services, now: float, *, stored: bool
) -> Waited | None:
    """Act on what the owner of the bytes has become; None: this job took over and pays.

    ``stored``: the job already has a record (WAITING); otherwise one is created when it waits.
    """
    assert job.content_hash is not None
    owner = services.store.get(owner_id)
    if owner is not None and owner.status == COMPLETED:
        copied = copy_cutout_from(job, owner, services, now)
        if copied is not None:
            return Waited(copied.result, copied.detail)
    elif owner is not None and owner.status == FAILED and owner.reason in SHARED_FAILURES:
        if not stored and not services.store.claim(job, now, 0, as_status=WAITING):
            return Waited(Outcome.DUPLICATE, "this object version is already being handled")
        message = f"identical to {owner.key}, which failed: {owner.error or owner.reason}"
        ended = fail_job(job, services, now, reason=str(owner.reason), message=message)
        return Waited(Outcome.FAILED if ended else Outcome.ALREADY_FINISHED, str(owner.reason))
    elif (owner is not None and not owner.is_final) or (owner is None and now - since < OWNER_START_SECONDS):
        return _wait(job, owner_id, services, now, stored)
    # The owner ended without a cutout anyone can copy: this job pays instead of it.
    if services.store.take_over_content(job.content_hash, job.job_id, owner_id, now):
        return None
    return _wait(job, owner_id, services, now, stored)  # another waiter took over first


def _wait(job: Job, owner_id: str, services: Services, now: float, stored: bool) -> Waited:
    if not stored and not services.store.claim(job, now, 0, as_status=WAITING):
        return Waited(Outcome.DUPLICATE, "this object version is already being handled")
    return Waited(Outcome.WAITING, f"identical bytes are being processed by job {owner_id}")


def hand_on(owner: Job, services: Services, now: float) -> int:
    """The owner's cutout landed: copy it to the jobs waiting for the same bytes. Returns how many."""
    if not owner.content_hash:
        return 0
    finished = 0
    try:
        waiters = list(services.store.completed_with_content(owner.content_hash, HAND_ON_LIMIT, status=WAITING))
        for waiter in waiters:
            copied = copy_cutout_from(waiter, owner, services, now)
            finished += int(copied is not None and copied.result == "cached")
    except Exception:
        # The owner's own result is safe; the reconciler finishes the waiters on its next pass.
        logger.warning("could not hand the cutout on to waiting jobs", exc_info=True, job_id=owner.job_id)
    return finished
