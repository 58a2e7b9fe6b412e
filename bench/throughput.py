"""Row 4: the local stack end to end, emulator at zero processing delay, as a share of the AWS
stand-in's own ceiling for the same requests.

The ceiling (:func:`stand_in_ceiling`) is measured in the same run: a fresh moto server (the same
``local.moto_server`` with its repairs) is sent, per image, the requests the pipeline makes
(bench/aws_calls.py: the upload, the SQS receive, each handler's S3 and DynamoDB operations with
conditions and updates shaped like ours, the gateway's GET, the delete), from as many threads as
the pipeline runs handlers (its pollers plus its webhook environments; uploads from 8, as the
pipeline's are), with no pipeline: no handlers, no emulator, no HTTP API. Pipeline images/s over
ceiling images/s is the share of what the stand-in allows that the pipeline gets.

Timed from the first upload to the moment every input has a cutout (or a report). Images are
small generated JPEGs (96 x 96, distinct bytes, so the content-hash dedup does not short-cut
them). A second, smaller run is profiled: every thread started during it gets its own cProfile
(installed through ``threading.setprofile``), threads are grouped into stages by what they ran
(moto's server, the gateway emulator, the SQS poller + submit handler, the HTTP API + webhook
handler, the reconciler), and each stage's busy time is its profiled time minus time spent
blocked (socket reads, locks, sleeps, select).
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import resource
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from bench.common import ROOT, Row, ratio, small_image

TARGET_SHARE = 0.6  # of the stand-in's own ceiling
UPLOAD_THREADS = 8
_WAITS = ("recv", "acquire", "sleep", "select", "poll", "accept", "'wait'", "readinto", "settimeout")


def _pipeline(images: int) -> Any:
    from local.gateway_emulator import FaultConfig
    from local.pipeline import LocalOptions, LocalPipeline

    return LocalPipeline(
        LocalOptions(
            faults=FaultConfig(processing_delay=0.0),
            emulator_workers=4,
            pollers=2,
            reconcile_every=5.0,
            stale_after_seconds=60,
            in_doubt_grace_seconds=60,
            max_age_seconds=600,
            visibility_timeout=60,
        )
    )


def run_once(images: int, timeout: float) -> dict[str, Any]:
    from bench.common import silence_powertools_logs

    payloads = [small_image(i) for i in range(images)]
    # Metrics are disabled locally but Powertools still buffers them; keep any flush off the table.
    with contextlib.redirect_stdout(io.StringIO()), _pipeline(images) as pipeline:
        silence_powertools_logs("ERROR")
        moto_pid = pipeline.aws.pid
        cpu_moto0, cpu_self0 = _process_cpu(moto_pid), _self_cpu()
        start = time.perf_counter()
        # Uploaded the way `aws s3 cp --recursive` does it: several at once.
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            keys = list(
                pool.map(lambda item: pipeline.upload(f"bench/tp-{item[0]:04d}.jpg", item[1]), enumerate(payloads))
            )
        uploaded = time.perf_counter() - start
        accounting = pipeline.wait(keys, timeout=timeout)
        elapsed = time.perf_counter() - start
        cpu_moto, cpu_self = _process_cpu(moto_pid) - cpu_moto0, _self_cpu() - cpu_self0
        stats = pipeline.emulator.stats() if pipeline.emulator else {}
        poller = pipeline.poller
        # What makes a run wait (visibility time-outs, the reconciler) rather than work: say so.
        waits = {
            "submit_invocations": poller.invocations,
            "submit_invocation_errors": poller.errors,
            "sqs_receive_errors": poller.receive_errors,
            "sqs_redelivered": poller.redelivered,
            "batch_item_failures": poller.item_failures,
        }
    from cutouts.observability import metrics

    metrics.clear_metrics()  # metrics are disabled locally; do not let them pile up and print at exit
    return {
        "images": images,
        "elapsed_s": elapsed,
        "upload_s": uploaded,
        "cutouts": len(accounting.cutouts),
        "failed": len(accounting.failed),
        "unaccounted": len(accounting.unaccounted),
        "accepted": stats.get("accepted"),
        "callbacks_sent": stats.get("callbacks_sent"),
        "callbacks_failed": stats.get("callbacks_failed"),
        **waits,
        "rate": len(accounting.cutouts) / elapsed,
        "cpu_s_moto_process": round(cpu_moto, 2),
        "cpu_s_pipeline_process": round(cpu_self, 2),
        "moto_busy_share_of_wall": round(cpu_moto / elapsed, 3),
    }


def _process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used, from /proc (moto's server runs apart)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ThreadProfiles:
    """One cProfile per thread started while active."""

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self._lock = threading.Lock()

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append((threading.current_thread().name, profile))
        profile.enable()  # replaces this hook for the rest of the thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]


def _stage(name: str, stats: pstats.Stats) -> str:
    """By thread name first; request threads by what they served (moto hooks into every client)."""
    files = " ".join(key[0] for key in stats.stats)  # type: ignore[attr-defined]
    funcs = {key[2] for key in stats.stats}  # type: ignore[attr-defined]
    if name.startswith("sqs-poller"):
        return "SQS poller + submit handler"
    if name.startswith("schedule"):
        return "reconcile handler (schedule)"
    if name.startswith("gateway-") or ("gateway_emulator" in files and "werkzeug" not in files):
        return "gateway emulator"
    if "dispatch" in funcs and "lambda_runtime" in files:
        return "HTTP API + webhook handler"
    if "werkzeug" in files:
        return "moto server (S3, SQS, DynamoDB, Secrets Manager)"
    return "other"


def _busy(stats: pstats.Stats) -> tuple[float, float]:
    total = waits = 0.0
    for key, (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tt
        if key[0] == "~" and any(w in key[2] for w in _WAITS):
            waits += tt
    return total, waits


def profile_run(images: int, timeout: float) -> dict[str, Any]:
    with ThreadProfiles() as tp:
        result = run_once(images, timeout)
    stages: dict[str, list[pstats.Stats]] = defaultdict(list)
    for name, profile in tp.profiles:
        try:
            stats = pstats.Stats(profile)
        except TypeError:  # a thread that never got to run anything
            continue
        stages[_stage(name, stats)].append(stats)
    busy: dict[str, float] = {}
    merged: dict[str, pstats.Stats] = {}
    for stage, group in stages.items():
        first = group[0]
        for other in group[1:]:
            first.add(other)
        merged[stage] = first
        total, waits = _busy(first)
        busy[stage] = total - waits
    slowest = max(busy, key=lambda s: busy[s])
    out = io.StringIO()
    top = merged[slowest]
    top.stream = out  # type: ignore[attr-defined]
    top.sort_stats("tottime").print_stats(15)
    prof_path = ROOT / "bench" / "throughput-slowest-stage.prof"
    top.dump_stats(prof_path)
    by_file: dict[str, float] = defaultdict(float)
    for key, (_cc, _nc, tt, _ct, _callers) in top.stats.items():  # type: ignore[attr-defined]
        path = key[0]
        if path == "~":
            continue
        for marker in (
            "/moto/",
            "/werkzeug/",
            "/botocore/",
            "/boto3/",
            "/urllib3/",
            "/cutouts/",
            "/local/",
            "/aws_lambda_powertools/",
            "/xml/",
            "/json/",
            "/http/",
            "/socketserver",
            "/email/",
        ):
            if marker in path:
                by_file[marker.strip("/")] += tt
                break
        else:
            by_file["other python"] += tt
    return {
        "run": result,
        "busy_s": {k: round(v, 3) for k, v in sorted(busy.items(), key=lambda kv: -kv[1])},
        "slowest_stage": slowest,
        "slowest_by_package_s": {k: round(v, 3) for k, v in sorted(by_file.items(), key=lambda kv: -kv[1])[:8]},
        "top_functions": out.getvalue(),
        "profile_file": str(prof_path.relative_to(ROOT)),
    }


def _handler_threads() -> int:
    options = _pipeline_options()
    return int(options.pollers) + int(options.webhook_environments)


def _pipeline_options() -> Any:
    return _pipeline(0).options


class _Replay:
    """The requests one image costs the stand-in, shaped like the handlers' (see bench/aws_calls.py)."""

    def __init__(self, endpoint: str, resources: Any) -> None:
        import boto3
        from botocore.config import Config

        from local.aws import REGION

        config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 3})
        self.s3, self.ddb, self.sqs, self.events = (
            boto3.client(name, region_name=REGION, endpoint_url=endpoint, config=config)
            for name in ("s3", "dynamodb", "sqs", "events")
        )
        self.res = resources
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        for client in (self.s3, self.ddb, self.sqs, self.events):
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[f"{model.service_model.service_name}.{model.name}"] += 1

    def _update(self, pk: str, sets: dict[str, Any], condition: str, values: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        names = {f"#a{k}": name for k, name in enumerate(sets)}
        vals = {f":v{k}": value for k, value in enumerate(sets.values())}
        expression = "SET " + ", ".join(f"#a{k} = :v{k}" for k in range(len(sets)))
        try:
            self.ddb.update_item(
                TableName=self.res.table_name,
                Key={"pk": {"S": pk}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**vals, **values},
            )
        except ClientError as exc:  # counted: every replayed update should hold its condition
            with self._lock:
                self.counts[f"error {exc.response['Error']['Code']}"] += 1

    def image(self, key: str, receipt: str) -> None:
        from cutouts import constants as c

        res, now = self.res, time.time()
        digest = f"{abs(hash(key)):032x}"
        job = f"job#{digest}"
        n = {"N": f"{now:.3f}"}
        # submit: the upload's first bytes (profile, normalising), key record, the key's versions today
        # (loop guard), source read, content query, content claim, the key's latest job, claim, the
        # spend reservation, request binding, SUBMITTED
        self.s3.get_object(Bucket=res.bucket, Key=key, Range="bytes=0-65535")["Body"].read()
        self.ddb.update_item(
            TableName=res.table_name,
            Key={"pk": {"S": f"versions#{key}"}},
            UpdateExpression="ADD #v :id",
            ExpressionAttributeNames={"#v": "versions"},
            ExpressionAttributeValues={":id": {"SS": [digest]}},
        )
        self._update(
            f"key#{key}",
            {"newest": {"S": key}, "sequencer": {"S": digest}, "updated_at": n},
            "attribute_not_exists(sequencer) OR sequencer < :s",
            {":s": {"S": digest}},
        )
        self.s3.get_object(Bucket=res.bucket, Key=key)["Body"].read()
        self.ddb.query(
            TableName=res.table_name,
            IndexName=c.CONTENT_INDEX_NAME,
            KeyConditionExpression="content_hash = :h",
            ExpressionAttributeValues={":h": {"S": digest}},
        )
        self.ddb.put_item(
            TableName=res.table_name,
            Item={"pk": {"S": f"content#{digest}"}, "job": {"S": job}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        self.ddb.get_item(TableName=res.table_name, Key={"pk": {"S": f"key#{key}"}}, ConsistentRead=True)
        self._update(
            job,
            {
                "status": {"S": "SUBMITTING"},
                "attempt": {"N": "1"},
                "tries": {"N": "1"},
                "bucket": {"S": res.bucket},
                "source_key": {"S": key},
                "updated_at": n,
                "created_at": n,
                "lease_until": n,
            },
            "attribute_not_exists(pk) OR #a0 = :r",
            {":r": {"S": "RETRY"}},
        )
        self.ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": res.table_name,
                        "Key": {"pk": {"S": "spend#day#bench"}},
                        "UpdateExpression": "ADD spent :p",
                        "ExpressionAttributeValues": {":p": {"N": "18000"}},
                    }
                },
                {
                    "Put": {
                        "TableName": res.table_name,
                        "Item": {"pk": {"S": f"spend#hold#{digest}#1"}, "amount": {"N": "18000"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        self.ddb.put_item(
            TableName=res.table_name,
            Item={"pk": {"S": f"request#{digest}"}, "job": {"S": job}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        self._update(
            job,
            {"status": {"S": "SUBMITTED"}, "request_id": {"S": digest}, "updated_at": n, "content_hash": {"S": digest}},
            "#a0 <> :d",
            {":d": {"S": "COMPLETED"}},
        )
        # the gateway fetches the presigned source
        self.s3.get_object(Bucket=res.bucket, Key=key)["Body"].read()
        # webhook: the job, the key's output lease, the cutout, a stale report, COMPLETED, release, waiters
        self.ddb.get_item(TableName=res.table_name, Key={"pk": {"S": job}}, ConsistentRead=True)
        self._update(
            f"key#{key}",
            {"output_lease": {"S": digest}, "lease_until": n},
            "attribute_not_exists(output_lease) OR lease_until < :t",
            {":t": n},
        )
        self.s3.put_object(
            Bucket=res.bucket, Key=f"cutouts/{key}.png", Body=b"\x89PNG" + digest.encode() * 40, ContentType="image/png"
        )
        self.s3.copy_object(
            Bucket=res.bucket,
            Key=f"work/masters/{key}.png",
            CopySource={"Bucket": res.bucket, "Key": f"cutouts/{key}.png"},
        )
        self.s3.delete_object(Bucket=res.bucket, Key=f"failed/{key}.json")
        self._update(
            job,
            {"status": {"S": "COMPLETED"}, "output_key": {"S": f"cutouts/{key}.png"}, "updated_at": n},
            "#a0 = :s",
            {":s": {"S": "SUBMITTED"}},
        )
        self._update(
            f"key#{key}", {"output_lease": {"S": ""}, "lease_until": {"N": "0"}}, "#a0 = :o", {":o": {"S": digest}}
        )
        self.ddb.query(
            TableName=res.table_name,
            IndexName=c.CONTENT_INDEX_NAME,
            KeyConditionExpression="content_hash = :h",
            ExpressionAttributeValues={":h": {"S": digest}},
        )
        # the completion event on the default bus, then its pending mark cleared
        self.events.put_events(
            Entries=[{"Source": c.EVENT_SOURCE, "DetailType": "Cutout Created", "Detail": json.dumps({"key": key})}]
        )
        self._update(job, {"event_sent": n}, "attribute_exists(pk)", {})
        self.sqs.delete_message(QueueUrl=res.queue_url, ReceiptHandle=receipt)


def stand_in_ceiling(images: int, threads: int | None = None) -> dict[str, Any]:
    """Images per second moto's server gives the requests the pipeline needs, with no pipeline."""
    from cutouts.submit_budget import BATCH_SIZE as SUBMIT_BATCH_SIZE
    from local.aws import LocalAws, create_resources, use_fake_credentials
    from local.pipeline import DEFAULT_API_KEY

    threads = threads or _handler_threads()
    payloads = [small_image(i) for i in range(images)]
    options = _pipeline_options()
    aws = LocalAws()
    endpoint = aws.start()
    saved = dict(os.environ)
    try:
        use_fake_credentials(endpoint)
        res = create_resources(
            endpoint,
            api_key=DEFAULT_API_KEY,
            input_prefix=options.input_prefix,
            visibility_timeout=60,
            max_receives=options.max_receives,
        )
        replay = _Replay(endpoint, res)
        cpu0 = _process_cpu(aws.pid)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            list(
                pool.map(
                    lambda item: replay.s3.put_object(
                        Bucket=res.bucket, Key=f"{options.input_prefix}bench/tp-{item[0]:04d}.jpg", Body=item[1]
                    ),
                    enumerate(payloads),
                )
            )
        uploaded = time.perf_counter() - start
        done = [0]
        seen: set[str] = set()  # a message redelivered under load is a duplicate, as the pipeline treats it
        lock = threading.Lock()

        def worker() -> None:
            idle = 0
            while True:
                with lock:
                    if done[0] >= images:
                        return
                got = replay.sqs.receive_message(
                    QueueUrl=res.queue_url, MaxNumberOfMessages=SUBMIT_BATCH_SIZE, WaitTimeSeconds=1 if idle else 0
                ).get("Messages", [])
                if not got:
                    idle += 1
                    if idle > 5:
                        return
                    continue
                idle = 0
                for message in got:
                    record = json.loads(message["Body"]).get("Records") or []
                    if not record:
                        replay.sqs.delete_message(QueueUrl=res.queue_url, ReceiptHandle=message["ReceiptHandle"])
                        continue
                    key = unquote_plus(record[0]["s3"]["object"]["key"])
                    with lock:
                        repeated = key in seen
                        seen.add(key)
                    if repeated:
                        replay.sqs.delete_message(QueueUrl=res.queue_url, ReceiptHandle=message["ReceiptHandle"])
                        continue
                    replay.image(key, message["ReceiptHandle"])
                    with lock:
                        done[0] += 1

        with ThreadPoolExecutor(max_workers=threads) as pool:
            for future in [pool.submit(worker) for _ in range(threads)]:
                future.result()
        elapsed = time.perf_counter() - start
        cpu = _process_cpu(aws.pid) - cpu0
    finally:
        aws.stop()
        os.environ.clear()
        os.environ.update(saved)
    per_image = {k: round(v / max(done[0], 1), 2) for k, v in sorted(replay.counts.items())}
    return {
        "images": done[0],
        "elapsed_s": elapsed,
        "upload_s": uploaded,
        "rate": done[0] / elapsed,
        "threads": threads,
        "cpu_s_moto_process": round(cpu, 2),
        "moto_busy_share_of_wall": round(cpu / elapsed, 3),
        "requests_per_image": per_image,
    }


def run(images: int = 500, profile_images: int = 150, timeout: float = 240.0) -> tuple[list[Row], dict[str, Any]]:
    ceiling = stand_in_ceiling(images)
    result = run_once(images, timeout)
    profiled = profile_run(profile_images, timeout)
    # moto's server and the pipeline are one process each, one GIL each: the busier of the two,
    # when it is busy most of the wall time, is what nothing else can make go faster.
    moto_busy = result["moto_busy_share_of_wall"]
    pipeline_busy = result["cpu_s_pipeline_process"] / result["elapsed_s"]
    if max(moto_busy, pipeline_busy) < 0.7:
        limit = "waiting, not CPU (neither process is busy 70% of the wall time)"
    elif moto_busy >= pipeline_busy:
        limit = "moto (its server process is the busier, CPU-bound)"
    else:
        limit = "the pipeline process (the busier, CPU-bound)"
    detours = {
        "SQS receives that failed": result["sqs_receive_errors"],
        "messages redelivered": result["sqs_redelivered"],
        "records handed back": result["batch_item_failures"],
        "callbacks that failed": result["callbacks_failed"],
    }
    detour_note = (
        ", ".join(f"{name} {count}" for name, count in detours.items() if count) or "no retries or redeliveries"
    )
    share = ratio(result["rate"], ceiling["rate"])
    rows = [
        Row(
            section="4 throughput",
            name=f"local stack end to end, {images} images, as a share of the stand-in's ceiling",
            figure=round(result["rate"], 2),
            unit="images/s",
            baseline=round(ceiling["rate"], 2),
            baseline_name=f"moto alone, the same requests, {ceiling['threads']} threads",
            ratio=share,
            target=f">= {TARGET_SHARE}x the stand-in's ceiling",
            met=share is not None and share >= TARGET_SHARE and result["unaccounted"] == 0,
            n=1,
            note=(
                f"ceiling: {ceiling['images']} images in {ceiling['elapsed_s']:.1f} s, moto busy "
                f"{ceiling['moto_busy_share_of_wall']:.0%} of the wall time; pipeline: "
                f"{result['cutouts']} cutouts in {result['elapsed_s']:.1f} s (uploads {result['upload_s']:.1f} s); "
                f"CPU: moto's server process {result['cpu_s_moto_process']:.1f} s (busy {moto_busy:.0%} of the "
                f"wall time), the pipeline process (handlers, emulator, poller) "
                f"{result['cpu_s_pipeline_process']:.1f} s on 2 cores -> the limit is {limit}; {detour_note}; "
                f"in-process profile ({profile_images} images): slowest stage {profiled['slowest_stage']}"
            ),
            details={
                "run": result,
                "ceiling": ceiling,
                "profile": {k: v for k, v in profiled.items() if k != "top_functions"},
            },
        )
    ]
    return rows, profiled
