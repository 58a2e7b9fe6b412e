"""Row 2: AWS calls per image by kind against the documented figure, and Lambda GB-seconds per
image against the poll-in-the-function design.

The local stack runs (moto server, the gateway emulator at zero processing delay, the HTTP API),
but its SQS poller and schedule are stopped and the HTTP API only records the callbacks: the
bench receives each upload's message itself, times ``submit.handler`` on the real SQS event,
waits (untimed) for the emulator's callback, then times ``webhook.handler`` on the real
payload-v2 event. Gateway processing time is therefore excluded by construction.

The calls our handlers make (botocore hooks) are compared, operation by operation, with
``bench/aws_calls.py``, the one place the documented figure lives (a test holds the handlers to it
too). The old "<= 2x a floor of 3 AWS calls" target is retired: each further call keeps a promise
(newest version wins, bytes checked before paying, de-duplication, the callback's request_id check,
never paid twice). The floor (a bare script making only presign, POST, put_item | status GET, media
GET, S3 PUT, update_item) is still timed, for the note only.

Poll design (the reference's "poll every 5-10 s"): one real run against the emulator measures
its calls and one poll's cost; the billed duration is modelled as 15 s of waiting (the
documented processing time; polls at 5, 10 and 15 s, the most favourable case for that design)
plus those calls. Nobody sleeps 15 s per image here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from typing import Any

from bench import aws_calls
from bench.common import MEMORY_MB, Row, median, ratio, silence_powertools_logs, small_image

# The AWS calls the floor makes (the job writes and the cutout's PUT), to tell ours' extra ones.
FLOOR_AWS_CALLS = Counter({"dynamodb.PutItem": 1, "dynamodb.UpdateItem": 1, "s3.PutObject": 1})
TARGET_POLL_RATIO = 30.0
GATEWAY_SECONDS = 15.0
POLL_INTERVAL = 5.0


def unique_image(i: int) -> bytes:
    """A 384 x 384 JPEG (the samples' size), different for every call."""
    return small_image(i * 7919 + int(time.time_ns() % 1_000_003), size=384)


class CallbackRecorder:
    """Stands in for the webhook behind the HTTP API: keeps each callback event for the bench."""

    def __init__(self) -> None:
        self._events: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self._cond:
            self._events[event["pathParameters"]["job_id"]] = event
            self._cond.notify_all()
        return {"statusCode": 200, "body": "{}"}

    def take(self, prefix: str, timeout: float = 15.0) -> dict[str, Any]:
        """The callback for the job whose id starts with ``prefix`` ("" for a job of ours)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for job_id in self._events:
                    if job_id.startswith(prefix) and (prefix or not job_id.startswith("floor-")):
                        return self._events.pop(job_id)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no callback for {prefix or 'our job'}")
                self._cond.wait(left)


class CallCounter:
    """Counts and times the AWS API calls a piece of code makes, through botocore's event hooks."""

    def __init__(self, clients: list[Any]) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: dict[str, list[float]] = {}  # per operation, every call's duration
        self._started: dict[str, float] = {}
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)
            client.meta.events.register("after-call.*.*", self._timed)

    @staticmethod
    def _name(model: Any) -> str:
        return f"{model.service_model.service_name}.{model.name}"

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[self._name(model)] += 1
        self._started[self._name(model)] = time.perf_counter()

    def _timed(self, model: Any, **_: Any) -> None:
        name = self._name(model)
        if name in self._started:
            self.seconds.setdefault(name, []).append(time.perf_counter() - self._started.pop(name))


class Bench:
    def __init__(self) -> None:
        from cutouts import constants as c
        from cutouts import settings_table
        from local.gateway_emulator import FaultConfig
        from local.pipeline import LocalOptions, LocalPipeline

        self.c, self.settings_table = c, settings_table
        self.pipeline = LocalPipeline(
            LocalOptions(faults=FaultConfig(processing_delay=0.0), reconcile_every=3600, emulator_workers=2)
        )

    def __enter__(self) -> Bench:
        import boto3
        import urllib3
        from botocore.config import Config

        p = self.pipeline.start()
        p.poller.stop()
        p.schedule.stop()
        self.recorder = CallbackRecorder()
        p.api._handler = self.recorder
        table = self.settings_table  # the secret cache as deployed, not the local stack's 5 s
        os.environ.update(table.environment({"secret_max_age_seconds": table.DEFAULTS["secret_max_age_seconds"]}))
        from cutouts import runtime

        runtime.reset()
        silence_powertools_logs("INFO")
        self.runtime = runtime
        self.res = p.resources
        self.sqs = self.res.client("sqs")
        self.s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
        self.ddb = boto3.client("dynamodb", region_name="us-east-1")
        self.http = urllib3.PoolManager(num_pools=4, maxsize=4)
        assert p.emulator is not None, "the bench needs the built-in emulator"
        self.emulator = p.emulator
        from local.pipeline import DEFAULT_API_KEY

        self.api_key = DEFAULT_API_KEY
        return self

    def __exit__(self, *exc: object) -> None:
        self.pipeline.stop()

    # --- ours --------------------------------------------------------------------------------

    def _message_for(self, key: str) -> dict[str, Any]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            reply = self.sqs.receive_message(
                QueueUrl=self.res.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1, AttributeNames=["All"]
            )
            for message in reply.get("Messages", []):
                body = json.loads(message["Body"])
                records = body.get("Records") or []
                if records and records[0]["s3"]["object"]["key"].endswith(key.rsplit("/", 1)[-1]):
                    return message
                self.sqs.delete_message(QueueUrl=self.res.queue_url, ReceiptHandle=message["ReceiptHandle"])
        raise TimeoutError(f"no queue message for {key}")

    def ours(self, i: int, counter: CallCounter | None = None) -> dict[str, Any]:
        from cutouts.handlers import submit, webhook
        from local.lambda_runtime import LocalContext

        key = f"{self.settings_table.DEFAULTS['input_prefix']}bench/ours-{i}.jpg"
        # every image is new: the content-hash dedup must not answer from its cache
        self.s3.put_object(Bucket=self.res.bucket, Key=key, Body=unique_image(i))
        message = self._message_for(key)
        event = {"Records": [self.pipeline.poller._record(message)]}
        if counter:
            counter.counts.clear()
        t0 = time.perf_counter()
        reply = submit.handler(event, LocalContext("submit"))
        t_submit = time.perf_counter() - t0
        if reply.get("batchItemFailures"):
            raise RuntimeError(f"submit failed: {reply}")
        self.sqs.delete_message(QueueUrl=self.res.queue_url, ReceiptHandle=message["ReceiptHandle"])
        submit_calls = dict(counter.counts) if counter else {}
        callback = self.recorder.take("")
        if counter:
            counter.counts.clear()
        t0 = time.perf_counter()
        answer = webhook.handler(callback, LocalContext("webhook", timeout_seconds=29))
        t_webhook = time.perf_counter() - t0
        if answer.get("statusCode") != 200:
            raise RuntimeError(f"webhook answered {answer}")
        webhook_calls = dict(counter.counts) if counter else {}
        return {"submit": t_submit, "webhook": t_webhook, "submit_calls": submit_calls, "webhook_calls": webhook_calls}

    # --- floor -------------------------------------------------------------------------------

    def _post(self, image_url: str, webhook_url: str | None) -> str:
        headers = {"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": self.api_key}
        if webhook_url:
            headers["X-Webhook-URL"] = webhook_url
        answer = self.http.request(
            "POST", self.emulator.submit_url, body=json.dumps({"image_url": image_url}).encode(), headers=headers
        )
        return str(json.loads(answer.data)["request_id"])

    def _status(self, request_id: str) -> dict[str, Any]:
        answer = self.http.request(
            "GET",
            f"{self.emulator.base_url}{self.c.GATEWAY_STATUS_PATH}{request_id}",
            headers={"Ocp-Apim-Subscription-Key": self.api_key},
        )
        return dict(json.loads(answer.data))

    def _store_result(self, pk: str, doc: dict[str, Any], out_key: str) -> None:
        media = self.http.request("GET", doc["output"]["media_url"][0]).data
        self.s3.put_object(Bucket=self.res.bucket, Key=out_key, Body=media, ContentType="image/png")
        self.ddb.update_item(
            TableName=self.res.table_name,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "COMPLETED"}},
        )

    def floor(self, i: int) -> float:
        key = f"bench-floor/in-{i}.jpg"  # outside the input prefix: no notification, no pipeline
        self.s3.put_object(Bucket=self.res.bucket, Key=key, Body=unique_image(i))
        pk = f"floor-{i:032x}"
        t0 = time.perf_counter()
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": self.res.bucket, "Key": key})
        request_id = self._post(url, f"{self.pipeline.callback_base_url}/callback/{pk}")
        self.ddb.put_item(
            TableName=self.res.table_name,
            Item={"pk": {"S": pk}, "request_id": {"S": request_id}, "status": {"S": "SUBMITTED"}},
        )
        first = time.perf_counter() - t0
        self.recorder.take(pk)
        t0 = time.perf_counter()
        doc = self._status(request_id)
        self._store_result(pk, doc, f"bench-floor/out-{i}.png")
        return first + time.perf_counter() - t0

    # --- the seed's poll workflow, in one function -------------------------------------------

    def poll_design(self, i: int) -> dict[str, float]:
        key = f"bench-poll/in-{i}.jpg"
        self.s3.put_object(Bucket=self.res.bucket, Key=key, Body=unique_image(i))
        pk = f"poll-{i}"
        calls = 0.0
        t0 = time.perf_counter()
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": self.res.bucket, "Key": key})
        request_id = self._post(url, None)
        self.ddb.put_item(TableName=self.res.table_name, Item={"pk": {"S": pk}, "status": {"S": "SUBMITTED"}})
        calls += time.perf_counter() - t0
        polls: list[float] = []
        while True:
            time.sleep(0.02)  # stands in for the 5-10 s sleep; not counted
            t0 = time.perf_counter()
            doc = self._status(request_id)
            polls.append(time.perf_counter() - t0)
            if doc["status"] in ("COMPLETED", "FAILED", "ERROR"):
                break
        t0 = time.perf_counter()
        self._store_result(pk, doc, f"bench-poll/out-{i}.png")
        calls += time.perf_counter() - t0
        return {"calls_excl_polls": calls, "poll": median(polls)}

    def reconcile_pass(self) -> float:
        from cutouts.handlers import reconcile
        from local.lambda_runtime import LocalContext, scheduled_event

        t0 = time.perf_counter()
        reconcile.handler(scheduled_event(), LocalContext("reconcile", timeout_seconds=120))
        return time.perf_counter() - t0


def run(n: int = 15, warmup: int = 3) -> tuple[list[Row], dict[str, Any]]:
    with Bench() as bench:
        for i in range(warmup):  # first calls create clients, read secrets, fill connection pools
            bench.ours(-1 - i)
            bench.floor(-1 - i)
            bench.poll_design(-1 - i)
        counter = CallCounter(list(bench.runtime._clients()[k] for k in ("s3", "dynamodb", "sqs", "events")))
        ours, floors, polls = [], [], []
        for i in range(n):
            ours.append(bench.ours(i, counter))
            floors.append(bench.floor(i))
            polls.append(bench.poll_design(i))
        call_s = {name: median(durations) for name, durations in counter.seconds.items()}
        reconcile_s = median([bench.reconcile_pass() for _ in range(max(3, n // 3))])
        emulator_stats = bench.emulator.stats()

    submit_s = median([o["submit"] for o in ours])
    webhook_s = median([o["webhook"] for o in ours])
    per_image = median([o["submit"] + o["webhook"] for o in ours])
    floor_s = median(floors)
    poll_s = median([p["poll"] for p in polls])
    poll_calls_s = median([p["calls_excl_polls"] for p in polls])
    n_polls = int(GATEWAY_SECONDS // POLL_INTERVAL)
    poll_billed = GATEWAY_SECONDS + poll_calls_s + n_polls * poll_s
    r_floor = ratio(per_image, floor_s)
    # Where the gap goes: the AWS calls ours makes beyond the floor's, each one a guarantee, timed
    # as they ran; what is left is our handlers' own work next to the floor's.
    beyond = Counter(ours[-1]["submit_calls"]) + Counter(ours[-1]["webhook_calls"]) - FLOOR_AWS_CALLS
    beyond_s = sum(count * call_s.get(name, 0.0) for name, count in beyond.items())
    rest_s = per_image - beyond_s
    r_poll = ratio(poll_billed, per_image)
    measured = {
        "submit_s": submit_s,
        "webhook_s": webhook_s,
        "per_image_s": per_image,
        "floor_s": floor_s,
        "reconcile_pass_s": reconcile_s,
        "submit_calls": ours[-1]["submit_calls"],
        "webhook_calls": ours[-1]["webhook_calls"],
        "poll_billed_s": poll_billed,
        "emulator_media_downloads": emulator_stats.get("media_downloads"),
    }
    seen = Counter(measured["submit_calls"]) + Counter(measured["webhook_calls"])
    documented = Counter(aws_calls.handlers_total())
    differs = {k: (seen.get(k, 0), documented.get(k, 0)) for k in {*seen, *documented} if seen[k] != documented[k]}
    kinds = aws_calls.by_kind(seen)
    gb = MEMORY_MB / 1024
    ours_gb_s, poll_gb_s = per_image * gb, poll_billed * gb
    rows = [
        Row(
            section="2 per-image work",
            name="AWS calls per image, common path (our handlers)",
            figure=float(sum(seen.values())),
            unit="calls",
            baseline=float(sum(documented.values())),
            baseline_name="documented (bench/aws_calls.py)",
            ratio=ratio(sum(seen.values()), sum(documented.values())),
            target="= documented, kind by kind",
            met=not differs,
            n=n,
            note=(
                "by kind: "
                + ", ".join(f"{k} {v}" for k, v in kinds.items())
                + f"; + on our behalf {sum(aws_calls.ON_OUR_BEHALF.values())} (S3 -> SQS send, receive, delete; "
                "the gateway's presigned GET); "
                + (f"DIFFERS from the documented figure: {differs}; " if differs else "")
                + f"warm handlers {per_image * 1000:.1f} ms (submit {submit_s * 1000:.1f} + webhook "
                f"{webhook_s * 1000:.1f}) vs a bare-boto3 floor of 3 calls {floor_s * 1000:.1f} ms "
                f"({r_floor}x, no target: the {sum(beyond.values())} further calls take {beyond_s * 1000:.1f} ms); "
                "moto + emulator on loopback, gateway processing excluded"
            ),
            details={
                "aws_calls_by_kind": kinds,
                "aws_calls_submit": measured["submit_calls"],
                "aws_calls_webhook": measured["webhook_calls"],
                "documented": dict(documented),
                "differs": differs,
                "on_our_behalf": aws_calls.ON_OUR_BEHALF,
                "per_environment": aws_calls.PER_ENVIRONMENT,
                "gateway_calls": aws_calls.GATEWAY,
                "submit_ms": round(submit_s * 1000, 2),
                "webhook_ms": round(webhook_s * 1000, 2),
                "floor_ms": round(floor_s * 1000, 2),
                "floor_calls": "presign, POST, put_item | status GET, media GET, put_object, update_item",
                "reconcile_pass_idle_ms": round(reconcile_s * 1000, 2),
                "aws_call_ms": {name: round(v * 1000, 2) for name, v in sorted(call_s.items())},
                "calls_beyond_floor": dict(beyond),
                "calls_beyond_floor_ms": round(beyond_s * 1000, 2),
                "rest_vs_floor": round(rest_s / floor_s, 3),
            },
        ),
        Row(
            section="2 per-image work",
            name="Lambda GB-seconds per image: poll-in-the-function design",
            figure=round(poll_gb_s, 4),
            unit="GB-s",
            baseline=round(ours_gb_s, 5),
            baseline_name=f"ours (submit + webhook, warm, {MEMORY_MB} MB)",
            ratio=r_poll,
            target=f">= {TARGET_POLL_RATIO:.0f}x (ours cheaper)",
            met=r_poll is not None and r_poll >= TARGET_POLL_RATIO,
            n=n,
            note=(
                f"at {MEMORY_MB} MB: poll design billed {poll_billed * 1000:,.0f} ms, modelled: "
                f"{GATEWAY_SECONDS:.0f} s waiting (documented ~15 s; polls at 5/10/15 s) + measured calls "
                f"{poll_calls_s * 1000:.1f} ms + {n_polls} x poll {poll_s * 1000:.2f} ms; ours "
                f"{per_image * 1000:.1f} ms measured (row 5 prices an upper bound with AWS round trips); "
                "10 s polling would bill >= 20 s"
            ),
            details={
                "poll_billed_ms": round(poll_billed * 1000, 1),
                "ours_ms": round(per_image * 1000, 2),
                "poll_ms": round(poll_s * 1000, 3),
                "calls_excl_polls_ms": round(poll_calls_s * 1000, 2),
                "waiting_s": GATEWAY_SECONDS,
                "polls": n_polls,
            },
        ),
    ]
    return rows, measured
