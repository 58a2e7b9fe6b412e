"""Row 5: AWS cost per 1,000 images from the measured durations, call counts and configuration.

List prices as of 2026 (us-east-1). Request counts come from the calls the handlers were seen
to make in row 2 (botocore hooks), plus the calls AWS makes on our behalf (S3 -> SQS, the event
source mapping's receive/delete, the gateway's presigned GET). Where a figure depends on
traffic, the conservative case is used and named.
"""

from __future__ import annotations

import math
from typing import Any

from bench import aws_calls
from bench.common import MEMORY_MB, Row

PRICES_AS_OF = "list prices as of 2026 (us-east-1)"
LAMBDA_GB_S = 0.0000133334  # arm64
LAMBDA_REQUEST = 0.20 / 1e6
HTTP_API_REQUEST = 1.00 / 1e6
SQS_REQUEST = 0.40 / 1e6
DDB_WRU = 0.625 / 1e6
DDB_RRU = 0.125 / 1e6
EVENTBRIDGE_EVENT = 1.00 / 1e6  # PutEvents, custom events, per 64 KB chunk
S3_PUT = 0.005 / 1000  # PUT, COPY, POST, LIST
S3_GET = 0.0004 / 1000  # GET, HEAD and all other requests; DELETE is free
SECRETS_CALL = 0.05 / 10000
XRAY_TRACE = 5.00 / 1e6
LOGS_GB = 0.50
GATEWAY_PER_IMAGE = 0.018
RESERVATION_ITEMS = 2  # the spend guard: the UTC day's counter and the attempt's hold (no monthly budget)
TARGET_PER_1000 = 0.05

# Lambda at 256 MB gets 256/1769 of a vCPU; this machine gave the bench a full core. Scaling all
# measured time by that factor is an upper bound (most of it is waiting on I/O, not CPU).
CPU_SCALE = 1769 / MEMORY_MB
# Round-trip times on AWS that loopback hides (ms): conservative guesses, stated in the table.
LATENCY_MS = {"s3": 20.0, "dynamodb": 8.0, "gateway": 250.0, "media": 150.0}
COLD_START_SHARE = 0.05  # share of invocations that start a new environment (bursty, low traffic)
SECRETS_PER_ENVIRONMENT = 2  # gateway key + signing keys, each cached 300 s
LOG_BYTES_PER_IMAGE = 3000  # START/END/REPORT lines + our INFO lines for two invocations
JOB_INDEX_WRITES = 6  # see run(): the status and content index entries the job's writes move
RECONCILE_RUNS_PER_MONTH = 43200  # every minute (settings table: reconcileEveryMinutes 1), 30 days
RECONCILE_CPU_MS = 100.0  # an idle pass's own work at 256 MB (Powertools, the handler): generous


def reconcile_per_month() -> float:
    """The reconciler's fixed monthly cost: it runs every minute whatever the traffic.

    Priced from its idle pass's calls (bench/aws_calls.py, held to the code by a test) at AWS round
    trips plus ``RECONCILE_CPU_MS``, not from a local timing scaled by CPU_SCALE: that swung with
    the machine's load ($0.08 to $0.13 between runs) while the bill does not.
    """
    calls = aws_calls.RECONCILE_IDLE_PASS
    billed_ms = math.ceil(RECONCILE_CPU_MS + sum(LATENCY_MS["dynamodb"] * v for v in calls.values()))
    reads = calls.get("dynamodb.Query", 0) * DDB_RRU  # an empty Query reads 0.5 RRU, rounded up to 1
    sqs = calls.get("sqs.ReceiveMessage", 0) * SQS_REQUEST
    per_run = LAMBDA_REQUEST + billed_ms / 1000 * (MEMORY_MB / 1024) * LAMBDA_GB_S + reads + sqs
    return RECONCILE_RUNS_PER_MONTH * per_run


def _billed_ms(measured_s: float, calls: dict[str, int], gateway_calls: int, media_gets: int) -> float:
    network = sum(LATENCY_MS["s3" if k.startswith("s3.") else "dynamodb"] * v for k, v in calls.items())
    network += gateway_calls * LATENCY_MS["gateway"] + media_gets * LATENCY_MS["media"]
    return math.ceil(measured_s * 1000 * CPU_SCALE + network)


def run(measured: dict[str, Any], cold_import_ms: float) -> tuple[list[Row], dict[str, Any]]:
    submit_calls: dict[str, int] = measured["submit_calls"]
    webhook_calls: dict[str, int] = measured["webhook_calls"]
    calls = {k: submit_calls.get(k, 0) + webhook_calls.get(k, 0) for k in {*submit_calls, *webhook_calls}}

    submit_ms = _billed_ms(measured["submit_s"], submit_calls, gateway_calls=1, media_gets=0)
    webhook_ms = _billed_ms(measured["webhook_s"], webhook_calls, gateway_calls=1, media_gets=1)
    measured_ms = math.ceil(measured["submit_s"] * 1000) + math.ceil(measured["webhook_s"] * 1000)
    gb = MEMORY_MB / 1024
    lambda_requests = 2  # one submit invocation (batch of one: the worst case) and one webhook
    cold_ms = COLD_START_SHARE * lambda_requests * cold_import_ms  # INIT is billed for managed runtimes

    s3_put = sum(
        v
        for k, v in calls.items()
        if k
        in ("s3.PutObject", "s3.CopyObject", "s3.UploadPart", "s3.CreateMultipartUpload", "s3.CompleteMultipartUpload")
    )
    s3_get = sum(v for k, v in calls.items() if k in ("s3.GetObject", "s3.HeadObject")) + 1  # + gateway's GET
    s3_free = sum(v for k, v in calls.items() if k == "s3.DeleteObject")
    # Items are under 1 KB: 1 WRU per write, plus the index entries the job's three writes move
    # (projection ALL): the claim creates its status-index entry (1), SUBMITTED moves it (delete +
    # put: 2) and creates the content-index entry (1), COMPLETED moves the status entry again (2).
    # The key, content and request records are in no index. The spend guard's reservation is one
    # TransactWriteItems of 2 items (the day's counter and the attempt's hold; 3 with a monthly
    # budget), and a transactional write costs 2 WRU per item. A completion event's end writes an
    # entry in the sparse pending-events index (1) and the clearing UpdateItem removes it (1).
    puts, updates = calls.get("dynamodb.PutItem", 0), calls.get("dynamodb.UpdateItem", 0)
    transactions = calls.get("dynamodb.TransactWriteItems", 0)
    events_put = calls.get("events.PutEvents", 0)
    reservation_wru = transactions * RESERVATION_ITEMS * 2
    index_writes = JOB_INDEX_WRITES + events_put * 2
    wru = puts + updates + index_writes + reservation_wru
    rru = calls.get("dynamodb.GetItem", 0) + calls.get("dynamodb.Query", 0)
    sqs = 3  # S3 -> SendMessage, the event source mapping's ReceiveMessage and DeleteMessage (unbatched)

    items = [
        (
            "Lambda duration (upper bound)",
            (submit_ms + webhook_ms + cold_ms) / 1000 * gb * LAMBDA_GB_S,
            f"submit {submit_ms} ms + webhook {webhook_ms} ms billed per image = measured x {CPU_SCALE:.1f} "
            f"(256 MB = {MEMORY_MB / 1769:.2f} vCPU) + AWS round trips {LATENCY_MS}; + cold starts on "
            f"{COLD_START_SHARE:.0%} of invocations x {cold_import_ms:.0f} ms INIT",
        ),
        (
            "Lambda duration (as measured here)",
            None,
            f"{measured_ms} ms per image: ${measured_ms * gb * LAMBDA_GB_S:.5f} per 1,000 (comparison only)",
        ),
        ("Lambda requests", lambda_requests * LAMBDA_REQUEST, "2 invocations per image (submit batch of 1, webhook)"),
        ("HTTP API requests", 1 * HTTP_API_REQUEST, "1 callback per image"),
        ("SQS requests", sqs * SQS_REQUEST, "S3 SendMessage + ReceiveMessage + DeleteMessage, unbatched"),
        (
            "DynamoDB writes",
            wru * DDB_WRU,
            f"{wru} WRU: {puts} PutItem (content claim, request binding) + {updates} UpdateItem (key record, "
            f"versions-per-day record, claim, SUBMITTED; output lease taken and released, COMPLETED, event "
            f"sent), 1 WRU each, + {index_writes} index entries the job's writes move (status index: created, "
            "moved twice; content index: created; pending-events index: set and cleared) + the spend "
            f"reservation: {transactions} TransactWriteItems x {RESERVATION_ITEMS} items x 2 WRU = {reservation_wru}",
        ),
        (
            "EventBridge PutEvents",
            events_put * EVENTBRIDGE_EVENT,
            f"{events_put} completion event(s) per image on the default bus (docs/events.md)",
        ),
        (
            "DynamoDB reads",
            rru * DDB_RRU,
            f"{rru} RRU: {calls.get('dynamodb.GetItem', 0)} consistent GetItem (the key's latest job, the job) + "
            f"{calls.get('dynamodb.Query', 0)} Query (content index: reuse, then waiters)",
        ),
        (
            "S3 PUT-class requests",
            s3_put * S3_PUT,
            f"{s3_put} (the cutout PUT and its copy to the key's master; the user's own upload not counted)",
        ),
        (
            "S3 GET-class requests",
            s3_get * S3_GET,
            f"{s3_get}: {s3_get - 1} source read(s) seen + the gateway's presigned GET; {s3_free} DELETE (free)",
        ),
        (
            "Secrets Manager",
            2 * SECRETS_PER_ENVIRONMENT * SECRETS_CALL / 100,
            "2 secrets per warm environment per 300 s; assumed >= 100 images per environment per 5 min "
            "(sparse traffic, 1 image per 5 min: $0.02 per 1,000)",
        ),
        (
            "X-Ray traces",
            2 * XRAY_TRACE * 0.05,
            "tracing ACTIVE, default sampling (1 per s + 5%): ~5% of 2 traces per image at volume",
        ),
        ("CloudWatch Logs ingestion", LOG_BYTES_PER_IMAGE / 1e9 * LOGS_GB, f"~{LOG_BYTES_PER_IMAGE} bytes per image"),
    ]
    per_image = sum(v for _, v, _ in items if v is not None)
    per_1000 = per_image * 1000
    reconcile_month = reconcile_per_month()
    breakdown = {
        name: {"usd_per_1000": round(v * 1000, 6) if v is not None else None, "basis": basis}
        for name, v, basis in items
    }
    rows = [
        Row(
            section="5 dollars",
            name="AWS cost per 1,000 images (itemised in details)",
            figure=round(per_1000, 4),
            unit="$",
            baseline=GATEWAY_PER_IMAGE * 1000,
            baseline_name="the gateway's own price per 1,000",
            ratio=round(per_1000 / (GATEWAY_PER_IMAGE * 1000), 5),
            target=f"<= ${TARGET_PER_1000} per 1,000",
            met=per_1000 <= TARGET_PER_1000,
            n=1,
            note=(
                f"{PRICES_AS_OF}; {MEMORY_MB} MB arm64; upper-bound durations; reconciler every minute adds "
                f"${reconcile_month:.2f} a month whatever the volume"
            ),
            details={
                "items": breakdown,
                "reconcile_per_month_usd": round(reconcile_month, 4),
                "prices": PRICES_AS_OF,
                "cold_start_share": COLD_START_SHARE,
            },
        )
    ]
    return rows, breakdown
