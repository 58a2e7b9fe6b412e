"""A job's life in one table: its states, and every transition the job table may write.

``JobStore`` applies these and nothing else: a transition names the states it may leave, the
state it enters, what its condition checks besides the state (the guards), and which attributes
it sets, removes and counts up. A write that is not a row here cannot be expressed, and each
row's condition says what it depends on, so a decision taken from a stale read fails at the
write instead of overwriting what happened meanwhile. The state diagram in docs/architecture.md is drawn from
this table (``mermaid``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Status(StrEnum):
    SUBMITTING = "SUBMITTING"  # claimed just before its POST: a POST may have left (lease_until bounds it)
    SUBMITTED = "SUBMITTED"  # the gateway accepted it (request_id known); waiting for the result
    IN_DOUBT = "IN_DOUBT"  # sent, but no answer came back: maybe accepted; a callback may adopt it
    RETRY = "RETRY"  # nothing was sent (the gateway refused for now, or a check failed): the queue brings it back
    RESUBMIT = "RESUBMIT"  # the gateway reported ERROR (not charged); the reconciler resubmits
    WAITING = "WAITING"  # another job is paying for the same bytes; this one will copy its cutout
    PARKED = "PARKED"  # the day's or month's budget is spent: nothing sent or paid; resumes when budget opens
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SUPERSEDED = "SUPERSEDED"  # a newer version of the same key took over


NEW = "NEW"  # as a source: the job has no record yet (the write creates it)
OPEN = (
    Status.SUBMITTING,
    Status.SUBMITTED,
    Status.IN_DOUBT,
    Status.RETRY,
    Status.RESUBMIT,
    Status.WAITING,
    Status.PARKED,
)
FINAL = (Status.COMPLETED, Status.FAILED, Status.SUPERSEDED)
LATE_REASON = "timed-out"  # the one failure a confirmed, billed result may still turn into a completion

# Ends that other systems hear about (job_events): entering one of these states also writes
# EVENT_PENDING (the state entered) in the same update, and "event_sent" clears it once the
# event is on the bus, so an end is announced even if the process dies between the two.
# SUPERSEDED is not announced: the newer version's job ends the key's story with its own event.
EVENT_PENDING = "event_pending"
ANNOUNCED: dict[str, str] = {Status.COMPLETED: "Cutout Created", Status.FAILED: "Cutout Failed"}


class Guard(StrEnum):
    """What a condition checks besides the state; the caller supplies what it acted on."""

    SEEN = "status is the one the caller read"
    ATTEMPT = "attempt is the one the caller acted on"
    REQUEST = "request_id is the one the caller acted on"
    NO_REQUEST = "no request recorded yet"
    CURRENT = "no newer version has taken the key"
    LATE = "failed only as timed-out"
    ENDED = "finished_at is the end the caller announced"


IDENTITY = ("job_id", "bucket", "key", "version", "version_id", "etag")


class Transition(NamedTuple):
    sources: tuple[str, ...]  # states it may leave; NEW: the job does not exist yet
    target: Status | None  # the state it enters; None: the state does not change
    guards: tuple[Guard, ...] = ()
    sets: tuple[str, ...] = ()  # attributes the caller gives values for (updated_at always)
    removes: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()  # counters that go up by one (from 0 when absent)
    keeps: tuple[str, ...] = ()  # attributes written only if the record has none yet
    touches: bool = True  # sets updated_at; False for bookkeeping that is no news of the job


_ENDING = ("finished_at", "reason", "error", "expires_at")
_COMPLETING = ("finished_at", "output_key", "expires_at")
_NEW_JOB = (*IDENTITY, "content_hash", "uploaded_at", "profile", "submit_key")

TRANSITIONS: dict[str, Transition] = {
    # Submit: everything free is checked first, then the claim and the POST follow at once.
    "claim": Transition(
        (NEW, Status.RETRY),
        Status.SUBMITTING,
        sets=(*_NEW_JOB, "lease_until"),
        removes=("request_id", "errors", "expires_at"),
        counts=("attempt",),
        keeps=("created_at", "tries"),
    ),
    "wait": Transition((NEW,), Status.WAITING, sets=_NEW_JOB, counts=("attempt",), keeps=("created_at", "tries")),
    "take_over": Transition(
        (Status.WAITING,),
        Status.SUBMITTING,
        (Guard.CURRENT,),
        sets=("lease_until",),
        removes=("errors",),
        counts=("attempt",),
    ),
    "submitted": Transition(
        (Status.SUBMITTING,),
        Status.SUBMITTED,
        (Guard.ATTEMPT,),
        sets=("request_id", "submitted_at", "content_hash"),
        removes=("lease_until",),
    ),
    "in_doubt": Transition((Status.SUBMITTING,), Status.IN_DOUBT, (Guard.ATTEMPT,), sets=("error",)),
    "release": Transition(
        (Status.SUBMITTING,), Status.RETRY, (Guard.ATTEMPT,), sets=("error",), removes=("lease_until",)
    ),
    "release_for_resubmit": Transition(
        (Status.SUBMITTING,), Status.RESUBMIT, (Guard.ATTEMPT,), sets=("error",), removes=("lease_until",)
    ),
    "release_in_doubt": Transition(
        (Status.SUBMITTING,), Status.IN_DOUBT, (Guard.ATTEMPT,), sets=("error",), removes=("lease_until",)
    ),
    # The spend guard (spend_guard.py): no budget left for this POST, so it is not sent; later, it is.
    "park": Transition(
        (Status.SUBMITTING,),
        Status.PARKED,
        (Guard.ATTEMPT,),
        sets=("error", "parked_reason", "parked_at"),
        removes=("lease_until",),
    ),
    "unpark": Transition(
        (Status.PARKED,),
        Status.SUBMITTING,
        (Guard.SEEN, Guard.ATTEMPT, Guard.CURRENT),
        sets=("lease_until", "resumed_at"),
        removes=("request_id", "errors", "parked_reason"),
        counts=("attempt",),
    ),
    "resume": Transition(
        (Status.PARKED,),
        Status.RETRY,
        (Guard.SEEN, Guard.ATTEMPT),
        sets=("reopened_at", "resumed_at"),
        removes=("parked_reason", "lease_until"),
    ),
    # Callbacks and status answers.
    "adopt": Transition(
        (Status.IN_DOUBT, Status.SUBMITTING),
        Status.SUBMITTED,
        (Guard.ATTEMPT, Guard.NO_REQUEST),
        sets=("request_id", "submitted_at"),
        removes=("lease_until",),
    ),
    "touch": Transition((Status.SUBMITTED, Status.RETRY), None, (Guard.SEEN,)),
    "gateway_error": Transition((Status.SUBMITTED,), Status.RESUBMIT, (Guard.REQUEST,), sets=("error",)),
    "resubmission": Transition(
        (Status.RESUBMIT, Status.IN_DOUBT),
        Status.SUBMITTING,
        (Guard.SEEN, Guard.ATTEMPT),
        sets=("lease_until",),
        removes=("request_id", "errors"),
        counts=("attempt", "tries"),
    ),
    "complete": Transition(
        (Status.SUBMITTED,),
        Status.COMPLETED,
        (Guard.REQUEST, Guard.CURRENT),
        sets=_COMPLETING,
        removes=("lease_until", "error", "reason"),
    ),
    "complete_late": Transition(
        (Status.FAILED,),
        Status.COMPLETED,
        (Guard.REQUEST, Guard.CURRENT, Guard.LATE),
        sets=_COMPLETING,
        removes=("lease_until", "error", "reason"),
    ),
    "complete_from_cache": Transition(
        (NEW, Status.RETRY, Status.WAITING),
        Status.COMPLETED,
        (Guard.CURRENT,),
        sets=(*_COMPLETING, *IDENTITY, "from_cache", "content_hash", "uploaded_at"),
        removes=("lease_until", "error", "reason"),
        keeps=("created_at", "attempt", "tries"),
    ),
    # Endings and the operator's way back.
    "fail": Transition(
        OPEN, Status.FAILED, (Guard.SEEN, Guard.ATTEMPT, Guard.CURRENT), sets=_ENDING, removes=("lease_until",)
    ),
    "supersede": Transition(
        OPEN, Status.SUPERSEDED, (Guard.SEEN, Guard.ATTEMPT), sets=_ENDING, removes=("lease_until",)
    ),
    "reopen": Transition(
        FINAL,
        Status.RETRY,
        (Guard.SEEN, Guard.ATTEMPT),
        sets=("reopened_at", "tries"),
        removes=("expires_at", "finished_at", "request_id", "errors", "lease_until", "superseded_by", EVENT_PENDING),
        counts=("attempt",),
    ),
    # Bookkeeping that leaves the state alone.
    "note_error": Transition(OPEN, None, (Guard.SEEN, Guard.ATTEMPT), sets=("error",), counts=("errors",)),
    "tell_superseded": Transition((*OPEN, *FINAL), None, sets=("superseded_by",)),
    # A key reverted to bytes it held before (same ETag, so the same job): that job is the newest again.
    "reinstate": Transition(OPEN, None, (Guard.SEEN,), removes=("superseded_by",)),
    # The end's event is on the bus (job_events): only for the end it announced.
    # Not a touch: the job did not change, and moving updated_at would rewrite its status index entry.
    "event_sent": Transition(
        tuple(ANNOUNCED), None, (Guard.SEEN, Guard.ENDED), removes=(EVENT_PENDING,), touches=False
    ),
}


def mermaid() -> str:
    """The state diagram, drawn from the table (docs/architecture.md embeds this text)."""
    lines = ["stateDiagram-v2"]
    seen: set[tuple[str, str]] = set()
    for _name, transition in TRANSITIONS.items():
        if transition.target is None:
            continue
        for source in transition.sources:
            edge = ("[*]" if source == NEW else str(source), str(transition.target))
            if edge in seen:
                continue
            seen.add(edge)
            labels = [
                other for other, t in TRANSITIONS.items() if t.target == transition.target and source in t.sources
            ]
            lines.append(f"    {edge[0]} --> {edge[1]}: {', '.join(labels)}")
    lines += [f"    {status} --> [*]" for status in FINAL]
    return "\n".join(lines)
