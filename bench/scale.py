"""``python -m bench.scale``: a discrete-event model of the deployed control loop at a million images a day.

Nothing on this machine can run a million images, so the loop is simulated, one event per
submitted record, per batch dispatch and per reconciler tick (a heap, no threads): S3 events into
SQS, the event source mapping's batch size and batching window and ``maxConcurrency``, each record
through the submit function (the AWS calls of ``bench/aws_calls.py`` at AWS round-trip times, one
POST), visibility back-off on 429/5xx through the REAL ``cutouts.handlers.submit.backoff_seconds``
(``Retry-After`` honoured), the final delivery's failure report, ``maxReceives`` and the dead-letter
queue (swept by the reconciler into failure reports), the reconciler's cadence (lost callbacks,
ERROR resubmissions), callback latency and the webhook. Deployed values come from the code itself
(:func:`deployed`): the settings table's defaults and the stack's constants, never copies.

The gateway (:class:`Gateway`) is a token bucket with a latency distribution and error rates. Its
defaults, and why:

* ``rate_per_s=20``, ``burst=20``: Pixazo publishes no rate limit. A million a day is 11.6 images
  a second on average, so any plan that carries it allows more than that; 20/s leaves the headroom
  a provider sizes plans with. The stack's callback route is sized for 2 submissions a second per
  submit slot (settings table, ``webhookReservedConcurrency``), 10/s at the default 5 slots.
* ``retry_after_s=1``: what the local emulator sends (``--retry-after`` default); 429 answers that
  carry it say "seconds".
* POST latency lognormal, median 0.25 s (bench/cost.py ``LATENCY_MS['gateway']``), sigma 0.5 (p99 ~0.8 s).
* processing lognormal, median 15 s (the reference's "~15 s"; bench row 2's poll model), sigma 0.4.
* callback latency lognormal, median 0.3 s (gateway -> HTTP API -> webhook), sigma 0.5.
* error rates: 5xx 0.2% of POSTs, ERROR 0.5% of jobs (resubmitted, not charged), FAILED 0.1% (a
  failure report, charged), lost callbacks 0.1% (the reconciler finds them after
  ``staleAfterSeconds``), submit invocations that crash 0.01% (the batch comes back after the
  queue's visibility timeout): small, non-zero, so every path of the loop is exercised at volume.

Each record's time in the submit function is its AWS calls at ``bench/cost.LATENCY_MS`` plus the
POST plus ``SUBMIT_CPU_S``; a 429 costs the calls before the POST plus the release and the
visibility change. Dollars use bench/cost.py's list prices; the gateway's $0.018 is paid per
accepted job that the gateway finishes (COMPLETED or FAILED), not for ERROR.

Policies: the deployed static ``maxConcurrency``; a larger static one; an adaptive limit (AIMD on
429s, one shared limit for all submit functions: +1 slot per limit's worth of accepted POSTs,
halved on a 429 at most once per ``cooldown_s``). The adaptive limiter exists only here.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import sys
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import aws_calls, cost
from bench.common import ROOT

DAY = 86_400.0
NOTIFY_DELAY_S = 0.5  # S3 event -> SQS message visible (typically well under a second)
INVOKE_OVERHEAD_S = 0.01  # a warm invocation's own overhead (Powertools, the batch processor)
SUBMIT_CPU_S = 0.03  # our code's CPU per record at 256 MB (bench row 2 x cost.CPU_SCALE is an upper bound)
CMV_S = cost.LATENCY_MS["dynamodb"] / 1000  # ChangeMessageVisibility: a regional round trip like DynamoDB's
RECONCILE_IDLE_S = 0.2  # one reconciler pass with nothing to do (a few index queries)
CUTOUT, FAILED, DEAD_LETTERED = 1, 2, 3


def _calls_s(calls: dict[str, int]) -> float:
    return sum(cost.LATENCY_MS["s3" if k.startswith("s3.") else "dynamodb"] * v for k, v in calls.items()) / 1000


# The submit record split at the POST: before it, the key record, source read, content query and
# claim, the key's latest job and the job claim; after it, the request binding and SUBMITTED.
PRE_POST_S = _calls_s(aws_calls.SUBMIT) - 2 * cost.LATENCY_MS["dynamodb"] / 1000
POST_POST_S = 2 * cost.LATENCY_MS["dynamodb"] / 1000
WEBHOOK_S = _calls_s(aws_calls.WEBHOOK) + (cost.LATENCY_MS["gateway"] + cost.LATENCY_MS["media"]) / 1000 + 0.03
DUPLICATE_S = 3 * cost.LATENCY_MS["dynamodb"] / 1000  # a redelivered, already handled record
REPORT_S = (cost.LATENCY_MS["s3"] + 2 * cost.LATENCY_MS["dynamodb"]) / 1000  # a failure report + the job


@dataclass(frozen=True)
class Deployed:
    """The loop's parameters as the stack deploys them (see :func:`deployed`)."""

    batch_size: int
    batching_window_s: float
    max_concurrency: int
    max_receives: int
    retry_base_s: int
    http_timeout_s: float
    reconcile_every_s: float
    stale_after_s: float
    max_attempts: int
    submit_timeout_s: float
    visibility_timeout_s: float
    memory_mb: int
    webhook_reserved_concurrency: int


def deployed() -> Deployed:
    """Read from the settings table's defaults and the stack's own constants (imports, not copies)."""
    # jsii prints a banner for an end-of-life Node on import: noise in a benchmark's output
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
    from cutouts import settings_table as t
    from cutouts.submit_budget import function_timeout_seconds
    from infra import functions as f
    from infra import stack as s

    d = t.DEFAULTS
    # the stack derives the submit time-out from these two settings (submit_budget)
    submit_timeout = float(function_timeout_seconds(d["http_timeout_seconds"], d["max_image_bytes"]))
    return Deployed(
        batch_size=s.SUBMIT_BATCH_SIZE,
        batching_window_s=float(s.SUBMIT_BATCHING_WINDOW_SECONDS),
        max_concurrency=int(d["max_concurrency"]),
        max_receives=int(d["max_receives"]),
        retry_base_s=int(d["retry_base_seconds"]),
        http_timeout_s=float(d["http_timeout_seconds"]),
        reconcile_every_s=60.0 * int(d["reconcile_every_minutes"]),
        stale_after_s=float(d["stale_after_seconds"]),
        max_attempts=int(d["max_attempts"]),
        submit_timeout_s=submit_timeout,
        visibility_timeout_s=6 * submit_timeout,  # infra/storage.py: six times the submit timeout
        memory_mb=int(f.MEMORY_MB),
        webhook_reserved_concurrency=int(d["webhook_reserved_concurrency"]),
    )


def submit_module() -> Any:
    """The deployed submit handler's module, imported with the environment it needs at cold start."""
    if "cutouts.handlers.submit" not in sys.modules:
        from bench.common import lambda_like_env

        # Only what its settings need at cold start: nothing that makes Powertools think it is in Lambda.
        env = lambda_like_env("submit")
        wanted = {k: v for k, v in env.items() if k.startswith("CUTOUTS_") or k in ("AWS_REGION", "AWS_DEFAULT_REGION")}
        added = {k: v for k, v in {**wanted, "POWERTOOLS_TRACE_DISABLED": "true"}.items() if k not in os.environ}
        os.environ.update(added)
        try:
            import cutouts.handlers.submit  # noqa: F401 - imported for the module object
        finally:
            for k in added:
                os.environ.pop(k, None)
            from cutouts import runtime

            runtime.settings.cache_clear()  # read again under the caller's own environment
    return sys.modules["cutouts.handlers.submit"]


@dataclass(frozen=True)
class Gateway:
    """The gateway the loop meets; the defaults are justified in the module docstring."""

    rate_per_s: float = 20.0
    burst: float = 20.0
    retry_after_s: float = 1.0
    post_median_s: float = cost.LATENCY_MS["gateway"] / 1000
    post_sigma: float = 0.5
    processing_median_s: float = 15.0
    processing_sigma: float = 0.4
    callback_median_s: float = 0.3
    callback_sigma: float = 0.5
    rate_5xx: float = 0.002
    rate_error: float = 0.005
    rate_failed: float = 0.001
    rate_lost_callback: float = 0.001
    rate_invocation_crash: float = 0.0001
    limit_drop: tuple[float, float, float] | None = None  # (from s, until s, rate per s)

    def rate_at(self, t: float) -> float:
        if self.limit_drop and self.limit_drop[0] <= t < self.limit_drop[1]:
            return self.limit_drop[2]
        return self.rate_per_s


@dataclass(frozen=True)
class Policy:
    """How many submit invocations may run at once."""

    name: str
    adaptive: bool = False
    cap: int | None = None  # None: the deployed maxConcurrency
    # +0.1 slot per limit's worth of accepted POSTs: about one slot per 4 s at the record time of
    # ~0.37 s. TCP's +1 per round trip (1.0 here) probes so hard it gets 10x the 429s of static 5
    # on the burst; 0.1 and a 5 s cool-down were the best of the four pairs tried (docs/scale.md).
    increase: float = 0.1
    decrease: float = 0.5  # the limit's factor on a 429
    cooldown_s: float = 5.0  # at most one decrease per this long (one 429 storm, one cut)
    floor: float = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    images: int
    spread_s: float  # uploads spread evenly (Poisson) over this long; 0: all at once
    gateway: Gateway = field(default_factory=Gateway)


def scenarios(scale: float = 1.0) -> list[Scenario]:
    """The issue's three; ``scale`` < 1 shrinks images and durations together (same rates)."""
    per_s = 1_000_000 / DAY
    hour = 3600 * scale
    return [
        Scenario("steady 1M/day", int(1_000_000 * scale), DAY * scale),
        Scenario("burst of 100,000", int(100_000 * scale), 0.0),
        Scenario(
            "gateway limit 6/s for an hour",
            int(3 * hour * per_s),
            3 * hour,
            Gateway(limit_drop=(hour, 2 * hour, 6.0)),
        ),
    ]


def policies(d: Deployed) -> list[Policy]:
    big = 4 * d.max_concurrency
    return [
        Policy(f"static {d.max_concurrency} (deployed)"),
        Policy(f"static {big}", cap=big),
        Policy(f"adaptive AIMD 1..{big}", adaptive=True, cap=big),
    ]


class _Limiter:
    def __init__(self, policy: Policy, d: Deployed) -> None:
        self.policy = policy
        self.cap = float(policy.cap or d.max_concurrency)
        self.limit = self.cap if not policy.adaptive else min(self.cap, float(d.max_concurrency))
        self._last_cut = -math.inf

    def slots(self) -> int:
        return max(1, int(self.limit))

    def accepted(self) -> None:
        if self.policy.adaptive:
            self.limit = min(self.cap, self.limit + self.policy.increase / self.limit)

    def throttled(self, t: float) -> None:
        if self.policy.adaptive and t - self._last_cut >= self.policy.cooldown_s:
            self.limit = max(self.policy.floor, self.limit * self.policy.decrease)
            self._last_cut = t


class _Bucket:
    def __init__(self, gateway: Gateway) -> None:
        self.g = gateway
        self.tokens = gateway.burst
        self.last = 0.0

    def take(self, t: float) -> bool:
        if t > self.last:
            self.tokens = min(self.g.burst, self.tokens + (t - self.last) * self.g.rate_at(t))
            self.last = t
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _arrivals(scenario: Scenario, rng: random.Random) -> list[float]:
    if scenario.spread_s <= 0:
        return [0.0] * scenario.images
    mean_gap = scenario.spread_s / scenario.images
    out, t = [], 0.0
    for _ in range(scenario.images):
        t += rng.expovariate(1.0 / mean_gap)
        out.append(t)
    return out


def simulate(scenario: Scenario, policy: Policy, d: Deployed | None = None, seed: int = 1) -> dict[str, Any]:
    """Run one scenario under one policy; every image ends as a cutout, a failure report or dead-lettered."""
    d = d or deployed()
    backoff: Callable[[int, float | None, int], int] = submit_module().backoff_seconds
    saved = random.getstate()
    random.seed(seed)  # backoff_seconds draws its jitter from the module-level generator
    try:
        return _simulate(scenario, policy, d, backoff, random.Random(seed))
    finally:
        random.setstate(saved)


def _simulate(
    scenario: Scenario,
    policy: Policy,
    d: Deployed,
    backoff: Callable[[int, float | None, int], int],
    rng: random.Random,
) -> dict[str, Any]:
    g = scenario.gateway
    uploads = _arrivals(scenario, rng)
    n = len(uploads)
    visible0 = [u + NOTIFY_DELAY_S for u in uploads]
    receives = [0] * n
    attempts = [0] * n  # POSTs the gateway accepted for the image's job
    handled = [False] * n  # the job left the submit path (accepted or failed): a redelivery is a duplicate
    fate = [0] * n
    ended = [math.inf] * n
    limiter, bucket = _Limiter(policy, d), _Bucket(g)
    lognorm = rng.lognormvariate
    c: dict[str, float] = dict.fromkeys(
        (
            "submit_invocations", "submit_s", "webhook_invocations", "webhook_s", "reconcile_extra_s", "posts",
            "accepted", "charged", "throttled_429", "errors_5xx", "gateway_error", "gateway_failed",
            "lost_callbacks", "crashes", "failed_rate_limited", "dead_lettered", "visibility_changes",
            "duplicates", "handed_back", "sqs_receives", "resubmissions",
        ),
        0.0,
    )  # fmt: skip
    peak = {"active": 0, "limit": limiter.limit}

    heap: list[tuple[float, int, int, Any]] = []  # (time, seq, kind, payload)
    seq = 0
    DISPATCH, RECORD, TICK = 0, 1, 2

    def push(t: float, kind: int, payload: Any = None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, payload))

    retries: list[tuple[float, int]] = []  # (visible again at, image)
    ready: deque[tuple[float, int]] = deque()
    ptr = 0
    active = 0
    dispatch_at = math.inf
    reconcile_due: list[tuple[float, int, str]] = []  # (due at, image, why)
    ticks_scheduled: set[float] = set()

    def want_dispatch(t: float) -> None:
        nonlocal dispatch_at
        if t < dispatch_at:
            dispatch_at = t
            push(t, DISPATCH)

    def want_tick(due: float) -> None:
        tick = math.ceil(due / d.reconcile_every_s) * d.reconcile_every_s
        if tick not in ticks_scheduled:
            ticks_scheduled.add(tick)
            push(tick, TICK)

    def finish(i: int, t: float, how: int) -> None:
        if fate[i] == 0:
            fate[i], ended[i] = how, t

    def accepted_at(i: int, t: float) -> None:
        """The gateway took the job at ``t``: its callback, or the reconciler, ends (or reopens) it."""
        attempts[i] += 1
        c["accepted"] += 1
        done = t + lognorm(math.log(g.processing_median_s), g.processing_sigma)
        called = done + lognorm(math.log(g.callback_median_s), g.callback_sigma)
        u = rng.random()
        if u < g.rate_error:  # ERROR: not charged; the webhook marks it for resubmission
            c["gateway_error"] += 1
            c["webhook_invocations"] += 1
            c["webhook_s"] += WEBHOOK_S / 2
            if attempts[i] >= d.max_attempts:
                finish(i, called + WEBHOOK_S / 2, FAILED)
            else:
                reconcile_due.append((called, i, "resubmit"))
                want_tick(called)
            return
        c["charged"] += 1
        if u < g.rate_error + g.rate_failed:
            c["gateway_failed"] += 1
            c["webhook_invocations"] += 1
            c["webhook_s"] += WEBHOOK_S
            finish(i, called + WEBHOOK_S, FAILED)
        elif u < g.rate_error + g.rate_failed + g.rate_lost_callback:
            c["lost_callbacks"] += 1
            due = t + d.stale_after_s
            reconcile_due.append((due, i, "poll"))
            want_tick(due)
        else:
            c["webhook_invocations"] += 1
            c["webhook_s"] += WEBHOOK_S
            finish(i, called + WEBHOOK_S, CUTOUT)

    def take(t: float, limit: int) -> list[int]:
        nonlocal ptr
        batch: list[int] = []
        while len(batch) < limit:
            if ready:
                i = ready.popleft()[1]
            elif ptr < n and visible0[ptr] <= t:
                i, ptr = ptr, ptr + 1
            else:
                break
            c["sqs_receives"] += 1
            receives[i] += 1
            if receives[i] > d.max_receives:  # SQS moves it to the dead-letter queue instead
                c["dead_lettered"] += 1
                # the reconciler's sweep turns it into a failure report (dead-lettered) at its next pass
                due = t
                reconcile_due.append((due, i, "dead-letter"))
                want_tick(due)
                continue
            batch.append(i)
        return batch

    def dispatch(t: float) -> None:
        nonlocal active
        while active < limiter.slots():
            while retries and retries[0][0] <= t:
                ready.append(heapq.heappop(retries))
            arrived = bisect_right(visible0, t, lo=ptr) - ptr if ptr < n else 0
            available = len(ready) + arrived
            if available == 0:
                nxt = min(visible0[ptr] if ptr < n else math.inf, retries[0][0] if retries else math.inf)
                if nxt < math.inf:
                    want_dispatch(nxt)
                return
            oldest = min(ready[0][0] if ready else math.inf, visible0[ptr] if arrived else math.inf)
            if available < d.batch_size and t < oldest + d.batching_window_s:
                fill = math.inf  # when the batch would be full from new uploads alone
                need = d.batch_size - len(ready)
                if ptr + need - 1 < n:
                    fill = visible0[ptr + need - 1]
                want_dispatch(min(oldest + d.batching_window_s, max(t, fill)))
                return
            batch = take(t, d.batch_size)
            if not batch:
                continue
            active += 1
            peak["active"] = max(peak["active"], active)
            c["submit_invocations"] += 1
            push(t + INVOKE_OVERHEAD_S, RECORD, [t, batch, 0, set()])

    def record(t: float, inv: list[Any]) -> None:
        """One record of a running invocation, at ``t``; then the next record, or the invocation's end."""
        nonlocal active
        start, batch, pos, delayed = inv
        i = batch[pos]
        tc = t
        if start + d.submit_timeout_s - tc < 2 * d.http_timeout_s + 5:  # submit._too_little_time
            c["handed_back"] += 1
            c["visibility_changes"] += 1
            tc += CMV_S
            heapq.heappush(retries, (tc + 1, i))
            delayed.add(i)
            want_dispatch(tc + 1)
        elif handled[i]:
            c["duplicates"] += 1
            tc += DUPLICATE_S
        else:
            tc += PRE_POST_S + SUBMIT_CPU_S
            c["posts"] += 1
            tc += lognorm(math.log(g.post_median_s), g.post_sigma)
            if rng.random() < g.rate_5xx:
                c["errors_5xx"] += 1
                retry_after: float | None = None
                took = False
            else:
                took = bucket.take(tc)
                retry_after = g.retry_after_s
                if not took:
                    c["throttled_429"] += 1
                    limiter.throttled(tc)
            if took:
                tc += POST_POST_S
                handled[i] = True
                limiter.accepted()
                accepted_at(i, tc)
            elif receives[i] >= d.max_receives:  # the final delivery reports instead of retrying
                tc += REPORT_S
                handled[i] = True
                c["failed_rate_limited"] += 1
                finish(i, tc, FAILED)
            else:
                delay = backoff(receives[i], retry_after, d.retry_base_s)
                tc += cost.LATENCY_MS["dynamodb"] / 1000 + CMV_S  # the release, the visibility change
                c["visibility_changes"] += 1
                heapq.heappush(retries, (tc + delay, i))
                delayed.add(i)
                want_dispatch(tc + delay)
        inv[2] = pos + 1
        if inv[2] < len(batch):
            push(tc, RECORD, inv)
            return
        c["submit_s"] += tc - start
        if rng.random() < g.rate_invocation_crash:  # the whole batch comes back after the visibility timeout
            c["crashes"] += 1
            for j in batch:  # a message whose visibility was changed keeps it; the rest wait the full time-out
                if j not in delayed:
                    heapq.heappush(retries, (start + d.visibility_timeout_s, j))
            want_dispatch(start + d.visibility_timeout_s)
        active -= 1
        peak["limit"] = max(peak["limit"], limiter.limit)
        want_dispatch(tc)

    def tick(t: float) -> None:
        ticks_scheduled.discard(t)
        tc = t + RECONCILE_IDLE_S
        keep: list[tuple[float, int, str]] = []
        for due, i, why in reconcile_due:
            if due > t or fate[i]:
                if not fate[i]:
                    keep.append((due, i, why))
                continue
            if why == "poll":  # a lost callback: the status GET finds it done, the cutout is written
                tc += WEBHOOK_S
                finish(i, tc, CUTOUT)
            elif why == "dead-letter":
                tc += REPORT_S
                finish(i, tc, DEAD_LETTERED)
            else:  # resubmit after ERROR, through the same gateway limit
                c["posts"] += 1
                c["resubmissions"] += 1
                tc += PRE_POST_S / 2 + g.post_median_s
                if bucket.take(tc):
                    accepted_at(i, tc)
                else:
                    c["throttled_429"] += 1
                    keep.append((due, i, why))
        reconcile_due[:] = keep
        c["reconcile_extra_s"] += tc - t - RECONCILE_IDLE_S
        for due, _, _ in keep:
            want_tick(max(due, t + d.reconcile_every_s))

    want_dispatch(visible0[0] if n else 0.0)
    events = 0
    while heap:
        t, _, kind, payload = heapq.heappop(heap)
        events += 1
        if kind == DISPATCH:
            if t != dispatch_at:
                continue
            dispatch_at = math.inf
            dispatch(t)
        elif kind == RECORD:
            record(t, payload)
        else:
            tick(t)
    return _summary(scenario, policy, d, uploads, fate, ended, c, peak, events)


def _summary(
    scenario: Scenario,
    policy: Policy,
    d: Deployed,
    uploads: list[float],
    fate: list[int],
    ended: list[float],
    c: dict[str, float],
    peak: dict[str, float],
    events: int,
) -> dict[str, Any]:
    n = len(uploads)
    latencies = sorted(ended[i] - uploads[i] for i in range(n) if fate[i] == CUTOUT)

    def pct(p: float) -> float:
        return _quantile(latencies, p)

    last_end = max(ended) if n else 0.0
    span = max(last_end, uploads[-1] if n else 0.0)
    gb = d.memory_mb / 1024
    reconcile_invocations = math.ceil(span / d.reconcile_every_s)
    reconcile_s = reconcile_invocations * RECONCILE_IDLE_S + c["reconcile_extra_s"]
    gb_s = {
        "submit": c["submit_s"] * gb,
        "webhook": c["webhook_s"] * gb,
        "reconcile": reconcile_s * gb,
    }
    invocations = c["submit_invocations"] + c["webhook_invocations"] + reconcile_invocations
    dollars = _dollars(n, c, gb_s, invocations)
    return {
        "scenario": scenario.name,
        "policy": policy.name,
        "images": n,
        "cutouts": fate.count(CUTOUT),
        "failed": fate.count(FAILED),
        "dead_lettered_images": fate.count(DEAD_LETTERED),
        "unfinished": fate.count(0),
        "drain_s": round(last_end - (uploads[-1] if n else 0.0), 1),
        "drain_99_s": round(_quantile(sorted(ended), 0.99) - (uploads[-1] if n else 0.0), 1),
        "p50_s": round(pct(0.50), 1),
        "p99_s": round(pct(0.99), 1),
        "throttled_429": int(c["throttled_429"]),
        "errors_5xx": int(c["errors_5xx"]),
        "failed_rate_limited": int(c["failed_rate_limited"]),
        "dead_lettered": int(c["dead_lettered"]),
        "invocations": {
            "submit": int(c["submit_invocations"]),
            "webhook": int(c["webhook_invocations"]),
            "reconcile": reconcile_invocations,
        },
        "gb_s": {k: round(v, 1) for k, v in gb_s.items()},
        "gb_s_total": round(sum(gb_s.values()), 1),
        "dollars": dollars,
        "peak_submit_concurrency": int(peak["active"]),
        "peak_limit": round(peak["limit"], 1),
        "counts": {k: int(v) for k, v in c.items() if not k.endswith("_s")},
        "events": events,
        "series": _series(uploads, ended),
    }


def _quantile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else math.nan


def _dollars(n: int, c: dict[str, float], gb_s: dict[str, float], invocations: float) -> dict[str, float]:
    kinds = aws_calls.by_kind(aws_calls.handlers_total())
    per_image = (
        (kinds.get("S3 GET", 0) + 1) * cost.S3_GET  # + the gateway's presigned GET
        + kinds.get("S3 PUT", 0) * cost.S3_PUT
        + kinds.get("DynamoDB reads", 0) * cost.DDB_RRU
        + kinds.get("DynamoDB writes", 0) * cost.DDB_WRU
        + cost.HTTP_API_REQUEST
        + cost.LOG_BYTES_PER_IMAGE / 1e9 * cost.LOGS_GB
    )
    # A 429 or 5xx costs the calls before the POST (5 writes/reads, 1 S3 GET) and the release.
    per_retry = 4 * cost.DDB_WRU + 2 * cost.DDB_RRU + cost.S3_GET
    sqs_requests = n + c["submit_invocations"] * 2 + c["visibility_changes"]  # send; receive + delete batch
    aws = (
        n * per_image
        + (c["throttled_429"] + c["errors_5xx"]) * per_retry
        + sqs_requests * cost.SQS_REQUEST
        + sum(gb_s.values()) * cost.LAMBDA_GB_S
        + invocations * cost.LAMBDA_REQUEST
    )
    gateway = c["charged"] * cost.GATEWAY_PER_IMAGE
    return {"aws": round(aws, 2), "gateway": round(gateway, 2), "aws_per_1000": round(aws / max(n, 1) * 1000, 4)}


def _series(uploads: list[float], ended: list[float], points: int = 240) -> dict[str, list[Any]]:
    """Backlog (uploaded, not yet ended) and cumulative ends, on an even time grid, for the plot."""
    ends = sorted(e for e in ended if e < math.inf)
    last = max(ends[-1] if ends else 0.0, uploads[-1] if uploads else 0.0, 1.0)
    grid = [last * k / (points - 1) for k in range(points)]
    backlog = [bisect_right(uploads, t) - bisect_right(ends, t) for t in grid]
    return {"t_s": [round(t, 1) for t in grid], "backlog": backlog}


def run(scale: float = 1.0, seed: int = 1) -> list[dict[str, Any]]:
    """Every scenario under every policy, except the large static one on the steady day (arrivals,
    not the limit, pace that day: the adaptive run shows what a larger limit would do)."""
    d = deployed()
    results = []
    for scenario in scenarios(scale):
        for policy in policies(d):
            if scenario.name.startswith("steady") and policy.cap and not policy.adaptive:
                continue
            started = time.perf_counter()
            result = simulate(scenario, policy, d, seed)
            result["wall_s"] = round(time.perf_counter() - started, 2)
            results.append(result)
    return results


def _hms(seconds: float) -> str:
    if seconds != seconds:
        return "-"
    seconds = max(0, int(round(seconds)))  # 99% ended before the last upload: nothing was waiting
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | policy | images | drain (all / 99%) | p50 / p99 upload->cutout | 429s | "
        "failed (429 on last try) | "
        "dead-lettered | invocations (submit / webhook / reconcile) | GB-s | $ AWS | $ gateway |"
    )
    rows = [head, "|" + "---|" * 12]
    for r in results:
        inv = r["invocations"]
        rows.append(
            f"| {r['scenario']} | {r['policy']} | {r['images']:,} | {_hms(r['drain_s'])} / {_hms(r['drain_99_s'])} | "
            f"{r['p50_s']:,.0f} s / {r['p99_s']:,.0f} s | {r['throttled_429']:,} | {r['failed_rate_limited']:,} | "
            f"{r['dead_lettered']:,} | {inv['submit']:,} / {inv['webhook']:,} / {inv['reconcile']:,} | "
            f"{r['gb_s_total']:,.0f} | {r['dollars']['aws']:,.2f} | {r['dollars']['gateway']:,.0f} |"
        )
    return "\n".join(rows) + "\n"


COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def plot(results: list[dict[str, Any]], path: Path) -> Path:
    """One panel per scenario: backlog over time, one line per policy (Pillow, no matplotlib)."""
    from PIL import Image, ImageDraw

    names = list(dict.fromkeys(r["scenario"] for r in results))
    pol = list(dict.fromkeys(r["policy"] for r in results))
    w, h, pad = 900, 300, 60
    image = Image.new("RGB", (w, h * len(names) + 40), "white")
    draw = ImageDraw.Draw(image)
    for k, p in enumerate(pol):
        draw.rectangle((pad + k * 220, 12, pad + k * 220 + 14, 24), fill=COLOURS[k % len(COLOURS)])
        draw.text((pad + k * 220 + 20, 12), p, fill="black")
    for row, name in enumerate(names):
        top = 40 + row * h
        group = [r for r in results if r["scenario"] == name]
        t_max = max(r["series"]["t_s"][-1] for r in group) or 1.0
        b_max = max(max(r["series"]["backlog"]) for r in group) or 1
        x0, y0, x1, y1 = pad, top + 30, w - 20, top + h - 40
        draw.rectangle((x0, y0, x1, y1), outline=(120, 120, 120))
        draw.text((x0, top + 10), f"{name}: images waiting (uploaded, not yet cut out or reported)", fill="black")
        draw.text((4, y0), f"{b_max:,}", fill="black")
        draw.text((4, y1 - 10), "0", fill="black")
        for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
            x = x0 + frac * (x1 - x0)
            draw.text((x - (50 if frac == 1.0 else 15), y1 + 6), _hms(frac * t_max), fill="black")
        for r in group:
            s = r["series"]
            points = [
                (x0 + (t / t_max) * (x1 - x0), y1 - (b / b_max) * (y1 - y0))
                for t, b in zip(s["t_s"], s["backlog"], strict=True)
            ]
            draw.line(points, fill=COLOURS[pol.index(r["policy"]) % len(COLOURS)], width=2)
    image.save(path)
    return path


def recommendation(results: list[dict[str, Any]]) -> str:
    """The issue's rule: adaptive only if it drains the burst sooner, with fewer 429s and no more dead letters."""
    burst = [r for r in results if r["scenario"].startswith("burst")]
    static = next((r for r in burst if r["policy"].endswith("(deployed)")), None)
    adaptive = next((r for r in burst if r["policy"].startswith("adaptive")), None)
    if not static or not adaptive:
        return "no burst comparison in this run"
    sooner = adaptive["drain_s"] < static["drain_s"]
    fewer = adaptive["throttled_429"] < static["throttled_429"]
    no_more = adaptive["dead_lettered"] <= static["dead_lettered"]
    verdict = "adopt the adaptive limit" if sooner and fewer and no_more else "keep the static maxConcurrency"
    return (
        f"{verdict}: burst drained in {_hms(adaptive['drain_s'])} adaptive vs {_hms(static['drain_s'])} static; "
        f"429s {adaptive['throttled_429']:,} vs {static['throttled_429']:,}; "
        f"dead-lettered {adaptive['dead_lettered']} vs {static['dead_lettered']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 1/50 scale (same rates), for the smoke test")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "scale.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "scale.png")
    args = parser.parse_args(argv)
    results = run(scale=0.02 if args.quick else 1.0, seed=args.seed)
    print(table(results))
    print(recommendation(results))
    slim = [{k: v for k, v in r.items() if k != "series"} for r in results]
    args.output.write_text(
        json.dumps({"deployed": asdict(deployed()), "gateway": asdict(Gateway()), "results": slim}, indent=2) + "\n"
    )
    plot(results, args.plot)
    print(f"wrote {args.output} and {args.plot}", file=sys.stderr)
    return 0


__all__ = ["Deployed", "Gateway", "Policy", "Scenario", "deployed", "simulate", "scenarios", "policies", "replace"]

if __name__ == "__main__":
    sys.exit(main())
