"""Chaos on the local stack: many inputs, bad ones mixed in, every gateway fault at once, forgers.

Also transient S3 and DynamoDB errors on the functions' own calls (throttles and 5xx, some
outlasting botocore's retries), malformed media URLs from the gateway, groups of identical
images uploaded at the same moment, folder markers, and keys whose cutout or report key would
break S3's limits. Keys are overwritten 2-4 times while earlier versions are in flight (the newest
sometimes a bad input); on a second bucket whose versioning was never enabled (jobs keyed on the
ETag), keys go A -> B -> A; and an operator retries failed jobs (`cutouts_cli retry`) mid-run. For
every key, the output left standing must be its newest version's: that version's cutout, or that
version's report (beside an older cutout only if the report says so), never both.

`make test` runs it with CUTOUTS_CHAOS_INPUTS (default 60) inputs; `make chaos` with 400. The
extra inputs (identical groups, long keys) come on top; folder markers are not inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import urllib3
from PIL import Image, ImageDraw

from cutouts import keys
from cutouts_cli.retry import matching_failures, retry_failed
from cutouts_cli.target import Target, make_clients
from local.gateway_emulator import FaultConfig
from local.moto_server import AwsFaultConfig
from local.pipeline import LocalOptions, LocalPipeline, Upload

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

INPUTS = int(os.environ.get("CUTOUTS_CHAOS_INPUTS", "60"))
# Two cores pass about one input a second through every fault at once (moto serves every call of the
# ~25 an image takes, from one process): the wait grows with the run. It is a ceiling, not a pause; a
# passing run ends as soon as every input is accounted. (At 0.6 s an input, which was right before the
# spend guard, events and profiles added their calls, `make chaos` ran out of time with 134 of its
# 500 inputs still in flight, and nothing else wrong.)
SETTLE_SECONDS = 150 + 1.5 * max(0, INPUTS - 60)
MAX_IMAGE_BYTES = 300_000


class EvilHost:
    """A host no request of ours may ever reach; it counts what it receives."""

    def __init__(self) -> None:
        host = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                host.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", "8")
                self.end_headers()
                self.wfile.write(b"\x89PNG\r\n\x1a\n")

            do_POST = do_GET  # noqa: N815

        self.hits = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/media/stolen.png"

    def stop(self) -> None:
        self.server.shutdown()


def _image(rng: random.Random, fmt: str = "PNG") -> bytes:
    background = tuple(rng.randrange(200, 256) for _ in range(3))
    subject = tuple(rng.randrange(0, 120) for _ in range(3))
    image = Image.new("RGB", (96, 96), background)
    x, y = rng.randrange(15, 35), rng.randrange(15, 35)
    ImageDraw.Draw(image).ellipse((x, y, x + 40, y + 40), fill=subject)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def _bad_inputs(rng: random.Random) -> list[tuple[str, bytes, str]]:
    jpeg = _image(rng, "JPEG")
    noise = Image.frombytes("RGB", (400, 400), rng.randbytes(400 * 400 * 3))
    huge = io.BytesIO()
    noise.save(huge, "PNG")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    # A GIF is accepted now (normalised to its first frame before submission); a broken one is not
    broken_gif = gif.getvalue()[:13] + rng.randbytes(40)
    return [
        ("empty.jpg", b"", "empty-file"),
        ("readme.jpg", b"this is text, not a picture\n" * 10, "unsupported-type"),
        ("invoice.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "unsupported-type"),
        ("half.jpg", jpeg[: len(jpeg) // 2], "truncated-image"),
        ("huge.png", huge.getvalue(), "too-large"),
        ("broken.gif", broken_gif, "undecodable"),
    ]


WEIRD_NAMES = ["with space.png", "a+b.png", "100%.png", "ünïcødé ✓.png", "deep/er/and/deeper/x.png"]

# Keys S3 accepts whose cutout and report keys would not fit: 1,021 and 1,024 bytes (the output
# and report keys would be longer than 1,024 bytes). They get a report at a hashed key, unpaid.
LONG_RELATIVE_KEYS = [
    "long/" + "k" * (1021 - len("uploads/long/") - len(".png")) + ".png",
    "写" * 337 + "x.png",
]
# A key whose cutout fits, but whose percent-quoted name alone is over S3's 2 KB of user metadata
# (728 bytes of three-byte characters): an input like any other; its cutout names it by a hash.
WIDE_RELATIVE_KEY = "写真" * 120 + ".jpg"


def _upload_identical_group(uploads: Uploads, keys_: list[str], data: bytes) -> list[str]:
    """Upload the same bytes under every name at the same moment, one thread each."""
    start = threading.Barrier(len(keys_))
    uploaded: list[str] = []

    def upload(name: str) -> None:
        start.wait()
        uploaded.append(uploads.put(name, data))

    threads = [threading.Thread(target=upload, args=(name,)) for name in keys_]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(uploaded)


# What an operator would retry: failures a new attempt can fix (the emulator draws a new fate).
RETRYABLE_REASONS = ["gateway-gave-up", "timed-out", "model-failed", "dead-lettered"]


class Uploads:
    """Every version the run puts, in order per key: the last one put is the key's newest."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.pipeline = pipeline
        self.newest: dict[tuple[str, str], Upload] = {}  # (bucket, key) -> newest upload
        self.content: dict[tuple[str, str], str] = {}  # (bucket, key) -> SHA-256 of the newest bytes
        self.versions: Counter[tuple[str, str]] = Counter()  # (bucket, key) -> uploads
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes, bucket: str | None = None) -> str:
        upload = self.pipeline.put(name, data, bucket)
        with self._lock:  # one thread per key puts its versions in order, so the last one is the newest
            self.newest[upload.bucket, upload.key] = upload
            self.content[upload.bucket, upload.key] = hashlib.sha256(data).hexdigest()
            self.versions[upload.bucket, upload.key] += 1
        return upload.key

    def newest_job_ids(self, bucket: str) -> dict[str, str]:
        return {key: upload.job_id for (b, key), upload in self.newest.items() if b == bucket}


def _overwrite_in_bursts(
    uploads: Uploads, plan: list[tuple[str, list[tuple[float, bytes]]]], bucket: str | None = None
) -> list[threading.Thread]:
    """Upload each key's versions in its own thread, each after its pause: earlier ones still in flight."""

    def burst(name: str, versions: list[tuple[float, bytes]]) -> None:
        for pause, data in versions:
            time.sleep(pause)
            uploads.put(name, data, bucket)

    threads = [threading.Thread(target=burst, args=item, daemon=True) for item in plan]
    for thread in threads:
        thread.start()
    return threads


class Operator:
    """Runs `cutouts_cli retry` for retryable failures at set moments of the run, as a person would."""

    def __init__(self, pipeline: LocalPipeline, at_seconds: list[float]) -> None:
        res, opts = pipeline.resources, pipeline.options
        self.target = Target(
            bucket=res.bucket,
            queue_url=res.queue_url,
            dlq_url=res.dlq_url,
            table=res.table_name,
            input_prefix=opts.input_prefix,
            output_prefix=opts.output_prefix,
            failure_prefix=opts.failure_prefix,
            region="us-east-1",
            endpoint_url=res.endpoint_url,  # the harness's port: an operator's calls see no injected fault
        )
        self.clients = make_clients(self.target)
        self.at_seconds = at_seconds
        self.retried: list[tuple[str, str, str, str | None]] = []  # (bucket, key, job id, reason)
        self.runs: list[dict[str, object]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _loop(self) -> None:
        for at in self.at_seconds:
            time.sleep(max(0.0, self._started + at - time.monotonic()))
            jobs = matching_failures(self.clients, self.target, time.time(), RETRYABLE_REASONS, None)
            result = retry_failed(self.clients, self.target, jobs, time.time(), region="us-east-1")
            by_id = {job.job_id: job for job in jobs}
            self.retried += [(by_id[r.job_id].bucket, r.key, r.job_id, r.reason) for r in result.retried]
            self.runs.append({"matched": result.matched, "retried": len(result.retried), **result.skipped})


def _source_key(source: str, bucket: str) -> str:
    """The S3 key of an emulator accounting source (``/bucket/key?versionId=...``)."""
    return source.split("?versionId=", 1)[0].removeprefix(f"/{bucket}/")


class Forger:
    """Sends forged and replayed callbacks while the real ones flow; records every answer."""

    def __init__(self, pipeline: LocalPipeline, evil: EvilHost, rng: random.Random) -> None:
        self.pipeline, self.evil, self.rng = pipeline, evil, rng
        self.http = urllib3.PoolManager()
        self.forged: list[tuple[str, int]] = []
        self.let_in: list[tuple[str, int, str, str]] = []  # (forgery, answer, job's source, request's source)
        self.untrusted_bodies: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _post(self, url: str, body: bytes) -> int:
        return self.http.request(
            "POST", url, body=body, headers={"Content-Type": "application/json"}, retries=False, timeout=10
        ).status

    def _loop(self) -> None:
        base = self.pipeline.callback_base_url
        while not self._stop.wait(0.05):
            jobs = [j for j in self.pipeline.emulator.stats()["jobs"].items() if j[1]["webhook_url"]]
            if len(jobs) < 2:
                continue
            (rid_a, a), (rid_b, b) = self.rng.sample(jobs, 2)
            url = urlsplit(a["webhook_url"])
            query = dict(parse_qsl(url.query))
            genuine = f"{base}{url.path}"
            body_b = json.dumps({"request_id": rid_b, "status": "COMPLETED", "output": {"media_url": [self.evil.url]}})
            body_a = json.dumps({"request_id": rid_a, "status": "COMPLETED", "output": {"media_url": [self.evil.url]}})
            attempts = {
                "wrong token": (f"{genuine}?{urlencode(query | {'token': 'A' * 43})}", body_a),
                "no token": (f"{genuine}?attempt={query['attempt']}", body_a),
                "other attempt": (f"{genuine}?{urlencode(query | {'attempt': int(query['attempt']) + 1})}", body_a),
                "another job's request": (f"{genuine}?{url.query}", body_b),
                "unknown job": (f"{base}/callback/{'0' * 32}?{url.query}", body_a),
                "invalid json": (f"{genuine}?{url.query}", "{not json"),
                "unknown status": (f"{genuine}?{url.query}", json.dumps({"request_id": rid_a, "status": "DONE"})),
            }
            for name, (target, body) in attempts.items():
                answer = self._post(target, body.encode())
                self.forged.append((name, answer))
                if answer < 400:
                    self.let_in.append((name, answer, a["source"], b["source"]))
            # The genuine URL with a body naming another media host: accepted as a nudge, never trusted.
            self.untrusted_bodies.append(self._post(f"{genuine}?{url.query}", body_a.encode()))


def test_chaos_every_input_accounted_charged_once_nobody_let_in():
    rng = random.Random(20261129)
    faults = FaultConfig(
        processing_delay=0.05,
        rate_429=0.2,
        retry_after_seconds=1,
        rate_5xx=0.15,
        rate_failed=0.1,
        rate_error=0.15,
        rate_stuck=0.05,
        rate_drop_callback=0.3,
        rate_duplicate_callback=0.3,
        rate_late_callback=0.2,
        late_callback_delay=2.0,
        rate_malformed_media_url=0.05,
        seed=11,
    )
    options = LocalOptions(
        faults=faults,
        # 4% of the functions' S3 and DynamoDB calls get a throttle or a 5xx; half of those on
        # every attempt botocore makes, so they reach our code.
        aws_faults=AwsFaultConfig(rate=0.04, reach=0.5, seed=5),
        max_age_seconds=25,
        stale_after_seconds=1,
        in_doubt_grace_seconds=3,
        max_image_bytes=MAX_IMAGE_BYTES,
        emulator_workers=6,
        unversioned_bucket=True,  # for keys reverted to earlier bytes: A -> B -> A, keyed on the ETag
    )
    evil = EvilHost()
    with LocalPipeline(options) as pipeline:
        forger = Forger(pipeline, evil, random.Random(7))  # its own, so the inputs are the same every run
        forger.start()
        expected_reason: dict[str, str] = {}
        overwritten: dict[str, tuple[str, str]] = {}
        maybe_deleted: list[str] = []
        inputs: list[str] = []
        groups: list[tuple[str, list[str]]] = []  # (SHA-256, keys) of identical uploads
        uploads = Uploads(pipeline)
        bucket, plain = pipeline.resources.bucket, pipeline.resources.unversioned_bucket
        assert plain is not None

        def upload(name: str, data: bytes) -> str:
            return uploads.put(name, data)

        bad = _bad_inputs(rng)
        # Keys overwritten 2-4 times at random intervals while earlier versions are in flight, the
        # newest sometimes a bad input; and, on the unversioned bucket, keys put back to earlier
        # bytes (A -> B -> A, the two A's identical), some with A and B in flight together. Their own
        # RNG, so the other inputs are the same as ever.
        burst_rng = random.Random(31)
        pdf = bad[2][1]
        bursts: list[tuple[str, list[tuple[float, bytes]]]] = []
        for n in range(max(3, INPUTS // 15)):
            versions = [_image(burst_rng, burst_rng.choice(["PNG", "JPEG"])) for _ in range(burst_rng.randint(2, 4))]
            if n % 3 == 1:
                versions[-1] = pdf  # a PDF named .jpg as the newest: its report, not the older cutout
            elif n % 3 == 2:
                versions[burst_rng.randrange(len(versions) - 1)] = bad[3][1]  # a truncated one in between
            pauses = [burst_rng.uniform(0, 3)] + [burst_rng.uniform(0, 2) for _ in versions[1:]]
            bursts.append((f"burst/{n}.jpg", list(zip(pauses, versions, strict=True))))
        reverts: list[tuple[str, list[tuple[float, bytes]]]] = []
        for n in range(max(3, INPUTS // 20)):
            a, b = _image(burst_rng), _image(burst_rng) if n % 3 else pdf
            close = n % 2 == 0  # A and B in flight at the same time, else B after A had a while
            pauses = [burst_rng.uniform(0, 3)] + [burst_rng.uniform(0, 0.3 if close else 2) for _ in range(2)]
            reverts.append((f"revert/{n}.png", list(zip(pauses, [a, b, a], strict=True))))
        writers = _overwrite_in_bursts(uploads, bursts) + _overwrite_in_bursts(uploads, reverts, plain)
        # The operator retries what a retry can fix, while the run goes on (and once more near the
        # maximum age, when timed-out jobs appear).
        operator = Operator(pipeline, at_seconds=[8.0, 18.0, 30.0])
        operator.start()
        for i in range(INPUTS):
            kind = i % 10
            if kind in (0, 1):  # a bad input
                name, data, reason = bad[i % len(bad)]
                key = upload(f"bad/{i}-{name}", data)
                expected_reason[key] = reason
            elif kind == 2:  # a good image under a difficult name
                key = upload(f"weird/{i}/{WEIRD_NAMES[i % len(WEIRD_NAMES)]}", _image(rng))
            elif kind == 3 and i % 20 == 3:  # overwritten while in flight: the newest version must win
                key = upload(f"overwrite/{i}.png", _image(rng))
                upload(f"overwrite/{i}.png", _image(rng))
                head = pipeline.s3().head_object(Bucket=pipeline.resources.bucket, Key=key)
                overwritten[key] = (head["VersionId"], head["ETag"].strip('"'))
            elif kind == 3:  # deleted right after upload
                key = upload(f"deleted/{i}.png", _image(rng))
                pipeline.s3().delete_object(Bucket=pipeline.resources.bucket, Key=key)
                maybe_deleted.append(key)
            else:
                key = upload(f"good/{i}.{'jpg' if i % 2 else 'png'}", _image(rng, "JPEG" if i % 2 else "PNG"))
            inputs.append(key)
            if i % 20 == 15:  # identical bytes under 3-5 names, uploaded at the same moment
                n = len(groups)
                data = bad[3][1] if n == 0 else _image(rng)  # the first group is a truncated image
                names = [f"same/{n}/{j}-{'copy' if j else 'original'}.jpg" for j in range(rng.randint(3, 5))]
                digest = hashlib.sha256(data).hexdigest()
                groups.append((digest, _upload_identical_group(uploads, names, data)))
                inputs += groups[-1][1]
        # "Create folder" in the console: zero-byte objects ending in "/"; not inputs
        markers = [upload(name, b"") for name in ("new folder/", "good/", "same/deeper/still/")]
        long_keys = [upload(name, _image(rng)) for name in LONG_RELATIVE_KEYS]
        inputs.append(upload(WIDE_RELATIVE_KEY, _image(rng)))
        for writer in writers:
            writer.join()
        inputs += [f"{pipeline.options.input_prefix}{name}" for name, _ in bursts]
        for name, versions in bursts:
            if versions[-1][1] == pdf:
                expected_reason[f"{pipeline.options.input_prefix}{name}"] = "unsupported-type"
        reverted = [f"{pipeline.options.input_prefix}{name}" for name, _ in reverts]
        operator.join()  # its retries are part of the run: every key's newest version settles after them

        s3, opts = pipeline.s3(), pipeline.options
        started = time.monotonic()
        deadline = started + SETTLE_SECONDS
        # Accounted: the newest version's job has ended, and the cutout or report standing is its own.
        accounting = pipeline.wait(inputs, timeout=SETTLE_SECONDS, newest=uploads.newest_job_ids(bucket))
        plain_accounting = pipeline.wait(
            reverted, timeout=max(1.0, deadline - time.monotonic()), newest=uploads.newest_job_ids(plain), bucket=plain
        )
        reports: dict[str, dict] = {}  # report key -> report, for the reports of long keys

        def long_keys_reported() -> set[str]:
            known = {keys.failure_key_for(k, opts.input_prefix, opts.failure_prefix) for k in inputs}
            for report_key in pipeline.list_keys(opts.failure_prefix) - known - set(reports):
                reports[report_key] = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
            return {r.get("source_key") for r in reports.values()} & set(long_keys)

        while len(long_keys_reported()) < len(long_keys) and time.monotonic() < deadline:
            time.sleep(1)
        settled_after = time.monotonic() - started
        time.sleep(2.5)  # let late and duplicated callbacks land after the last result
        forger.stop()
        stats = pipeline.emulator.stats()
        aws_faults = pipeline.aws.fault_stats()

        broken: dict[str, object] = {}  # every broken promise, so one run shows them all
        # Every input ended as exactly one of: a cutout, or a failure report.
        if accounting.unaccounted:
            broken["unaccounted"] = accounting.unaccounted
        # Each object version was charged at most once; so was each content (single-flight). Except
        # what was asked for: an operator's retry of a failure the gateway charged (model-failed)
        # pays again, and so does bytes put back (A -> B -> A) after a newer upload's cutout
        # replaced theirs; on the unversioned bucket, a "source" is every version of its key.
        retried_jobs = Counter(job_id for _, _, job_id, _ in operator.retried)
        retried_keys = Counter((b, key) for b, key, _, _ in operator.retried)
        content_allowance = Counter(uploads.content[b, key] for b, key, _, _ in operator.retried)
        content_allowance.update(uploads.content[plain, key] for key in reverted)

        def charges_allowed(source: str) -> int:
            if source.startswith(f"/{plain}/"):
                key = source.removeprefix(f"/{plain}/")
                return uploads.versions[plain, key] + retried_keys[plain, key]
            key = _source_key(source, bucket)
            version = source.partition("?versionId=")[2]
            return 1 + retried_jobs[keys.job_id_for(bucket, key, version)]

        if twice := {s: n for s, n in stats["charged_by_source"].items() if n > charges_allowed(s)}:
            broken["object versions charged twice"] = twice
        if content_twice := {h: n for h, n in stats["charged_by_content"].items() if n > 1 + content_allowance[h]}:
            broken["content hashes charged more than once"] = content_twice
        # Nobody was let in, and nothing was fetched from a host that is not the gateway's.
        assert forger.forged, "the forger sent nothing"
        if evil.hits:
            broken["evil host hits"] = evil.hits
        # (A 5xx acts on nothing: the webhook could not check the forgery, say when an injected
        # DynamoDB fault reached it, and the sender may retry. Only an answer below 400 lets one in.)
        if let_in := forger.let_in:
            broken["forged callbacks accepted (forgery, answer, job's source, request's source)"] = [
                (name, code, _source_key(job_source, bucket), _source_key(request_source, bucket))
                for name, code, job_source, request_source in let_in[:10]
            ]
        forged_5xx = sum(1 for _, code in forger.forged if code >= 500)
        # Bad inputs carry their reason; good ones are real cutouts. (Where a check expects a reason,
        # "timed-out" is an honest answer too: an AWS fault that reached the code can hold a job
        # past the maximum age. Those are counted, and a crash of our own code is caught below.)
        timed_out_instead: list[str] = []
        for key, reason in expected_reason.items():
            report_key = keys.failure_key_for(key, opts.input_prefix, opts.failure_prefix)
            if key in accounting.failed:
                report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
                if report["reason"] == "timed-out":
                    timed_out_instead.append(key)
                elif report["reason"] != reason:
                    broken.setdefault("bad inputs with another reason", []).append((key, report["reason"]))
        for key, newest in overwritten.items():
            if key in accounting.cutouts:
                head = s3.head_object(
                    Bucket=bucket, Key=keys.output_key_for(key, opts.input_prefix, opts.output_prefix)
                )
                assert head["Metadata"]["source-version"] in newest, key
        for key in accounting.cutouts[:20]:
            body = s3.get_object(Bucket=bucket, Key=keys.output_key_for(key, opts.input_prefix, opts.output_prefix))
            image = Image.open(io.BytesIO(body["Body"].read()))
            assert image.mode == "RGBA" and image.getpixel((2, 2))[3] == 0
        # Every cutout is of its own source: the very media the gateway made from the bytes of the
        # key's newest upload (by its own request or an identical twin's).
        media_of: dict[str, set[str]] = {}  # content SHA-256 -> SHA-256 of the media made from it
        for job in stats["jobs"].values():
            if job["media_sha256"]:
                media_of.setdefault(job["content_sha256"], set()).add(job["media_sha256"])
        for b, key in [(bucket, k) for k in accounting.cutouts] + [(plain, k) for k in plain_accounting.cutouts]:
            cutout_key = keys.output_key_for(key, opts.input_prefix, opts.output_prefix)
            digest = hashlib.sha256(s3.get_object(Bucket=b, Key=cutout_key)["Body"].read()).hexdigest()
            if digest not in media_of.get(uploads.content[b, key], ()):  # its newest version's bytes
                broken.setdefault("cutouts not made from their newest source", []).append(key)
        # For every key, the output standing is its newest version's: that version's cutout, or that
        # version's report (beside an older version's cutout only if it says so), never both.
        not_newest: dict[str, list[tuple[object, ...]]] = {}
        for b, key in [(bucket, k) for k in inputs] + [(plain, k) for k in reverted]:
            newest, where = uploads.newest[b, key], "unversioned" if b == plain else "versioned"
            cutout_key = keys.output_key_for(key, opts.input_prefix, opts.output_prefix)
            report_key = keys.failure_key_for(key, opts.input_prefix, opts.failure_prefix)
            try:
                cutout = s3.head_object(Bucket=b, Key=cutout_key)["Metadata"]
            except s3.exceptions.ClientError:
                cutout = None
            try:
                report = json.loads(s3.get_object(Bucket=b, Key=report_key)["Body"].read())
            except s3.exceptions.NoSuchKey:
                report = None
            cutout_job = cutout and cutout.get("job-id")
            report_job = report and report.get("job_id")
            found = (where, key, newest.version, cutout_job, report_job, report and report.get("reason"))
            if cutout_job == newest.job_id and cutout and cutout.get("source-version") == newest.version:
                if report is not None:
                    not_newest.setdefault("a cutout of the newest version and a report", []).append(found)
            elif report_job == newest.job_id and report and report.get("source_version") == newest.version:
                if cutout is not None and not report.get("earlier_cutout"):
                    not_newest.setdefault("a report beside an older cutout, not saying so", []).append(found)
            else:
                not_newest.setdefault("final output not the newest version's", []).append(found)
        broken.update(not_newest)
        newest_broken = sum(len(found) for found in not_newest.values())
        # A malformed media_url ends its job with a bad-output report (and stalls nothing: see above).
        accepted_per_key = Counter(_source_key(source, bucket) for source in stats["accepted_by_source"])
        for job in stats["jobs"].values():
            key = _source_key(job["source"], bucket)
            single = accepted_per_key[key] == 1 and uploads.versions[bucket, key] == 1
            if job["malformed_media_url"] and job["status"] == "COMPLETED" and single:
                report_key = keys.failure_key_for(key, opts.input_prefix, opts.failure_prefix)
                if key in accounting.failed:
                    outcome = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())["reason"]
                else:
                    outcome = "a cutout" if key in accounting.cutouts else "nothing"
                if outcome == "timed-out":
                    timed_out_instead.append(key)
                elif outcome != "bad-output":
                    broken.setdefault("malformed media URLs not reported bad-output", []).append(
                        (key, job["malformed_media_url"], outcome)
                    )
        # Every name of an identical group ends alike: each a cutout, or each the same report.
        for digest, group in groups:
            outcomes = set()
            for key in group:
                if key in accounting.cutouts:
                    outcomes.add("cutout")
                elif key in accounting.failed:
                    report_key = keys.failure_key_for(key, opts.input_prefix, opts.failure_prefix)
                    outcomes.add(json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())["reason"])
            if len(outcomes - {"timed-out"}) > 1:
                broken.setdefault("identical groups ending differently", []).append((digest[:12], sorted(outcomes)))
        # The handlers raised nothing but AWS errors (injected faults, or S3 refusing a key): a
        # malformed answer or key must not crash them, nor stall the reconciler.
        handler_errors = pipeline.poller.error_types + pipeline.api.error_types + pipeline.schedule.error_types
        # (RetryLater is how a submit record asks to come back through the queue: no crash.)
        expected = ("botocore.", "cutouts.submission.RetryLater")
        if crashes := {name: n for name, n in handler_errors.items() if not any(e in name for e in expected)}:
            broken["handlers crashed (not an AWS error)"] = crashes
        # Folder markers are ignored: no job, no report, nothing submitted.
        failure_keys = pipeline.list_keys(opts.failure_prefix)
        if folder_reports := sorted(k for k in failure_keys if k.endswith("/.json")):
            broken["reports of folder markers"] = folder_reports
        submitted_keys = {_source_key(source, bucket) for source in stats["accepted_by_source"]}
        if folder_jobs := sorted(submitted_keys & set(markers)):
            broken["folder markers submitted"] = folder_jobs
        items = (
            pipeline.resources.client("dynamodb")
            .get_paginator("scan")
            .paginate(TableName=pipeline.resources.table_name)
        )
        table = [item for page in items for item in page["Items"]]
        named = {value["S"] for item in table for value in item.values() if "S" in value}
        if marker_records := sorted(m for m in markers if any(v.endswith(m) for v in named)):
            broken["folder markers with a job record"] = marker_records
        # Keys too long for their cutout, report or metadata get a report at a key that fits, and cost nothing.
        if unreported := sorted(set(long_keys) - long_keys_reported()):
            broken["long keys without a report naming them"] = [k[:40] + "..." for k in unreported]
        if long_charged := sorted(
            _source_key(source, bucket)[:40] + "..."
            for source in stats["charged_by_source"]
            if _source_key(source, bucket) in long_keys
        ):
            broken["long keys charged"] = long_charged

        print(
            f"\nchaos: {accounting.summary()}; gateway accepted {stats['accepted']}, rejected {stats['rejected']}, "
            f"charged {stats['charged']}, errors {stats['errors']}, stuck {stats['stuck']}, "
            f"callbacks dropped {stats['callbacks_dropped']} duplicated {stats['callbacks_duplicated']} "
            f"late {stats['callbacks_late']}; "
            f"forged callbacks refused {len(forger.forged) - len(let_in)}/{len(forger.forged)} "
            f"({forged_5xx} with a 5xx); "
            f"untrusted bodies {len(forger.untrusted_bodies)}; evil host hits {evil.hits}; "
            f"deleted-before-processing {len(maybe_deleted)}, overwritten {len(overwritten)}; "
            f"overwrite bursts {len(bursts)} ({sum(len(v) for _, v in bursts)} versions), "
            f"reverted A->B->A {len(reverts)} ({plain_accounting.summary()}); "
            f"operator retries {len(operator.retried)} in {len(operator.runs)} runs; "
            f"keys whose final output is not the newest version's alone {newest_broken}; "
            f"AWS faults injected {aws_faults['injected']} on {aws_faults['calls_faulted']}/{aws_faults['calls_seen']} "
            f"calls, {aws_faults['reached'] + aws_faults['stopped_early']} reached our code; "
            f"malformed media URLs served {stats['malformed_media_urls']}; "
            f"identical groups {len(groups)} ({sum(len(g) for _, g in groups)} keys); folder markers {len(markers)}; "
            f"long keys {len(long_keys)} ({len(long_keys_reported())} reported); "
            f"content hashes charged more than once {len(content_twice)}; "
            f"timed-out where another reason was due {len(timed_out_instead)}; "
            f"webhook 500s {pipeline.api.errors}, reconcile runs failed {pipeline.schedule.errors}; "
            f"settled after {settled_after:.0f} s"
        )
        print(f"chaos: AWS faults reaching our code, by operation: {aws_faults['reached_by_operation']}")
        print(f"chaos: handler errors: {dict(handler_errors)}")
        if broken:
            print(f"chaos: broken promises: {json.dumps(broken, ensure_ascii=False, default=str)[:4000]}")
        bucket_of = {"versioned": bucket, "unversioned": plain}
        for promise, found in not_newest.items():
            for entry in found:  # (bucket, key, newest version, cutout's job, report's job, report's reason)
                print(f"chaos: {promise}: {entry}")
        for b, key in sorted({(bucket_of[str(f[0])], str(f[1])) for found in not_newest.values() for f in found}):
            # The records of a key whose output is not its newest version's, for the diagnosis
            records = [
                {name: next(iter(value.values())) for name, value in item.items()}
                for item in table
                if item.get("key", {}).get("S") == key
                and item.get("bucket", {}).get("S") == b
                or item["pk"]["S"] == f"key#{b}/{key}"
            ]
            if records:
                print(f"chaos: records of {b}/{key} (newest {uploads.newest[b, key].job_id}): {records}")
    evil.stop()
    assert not broken, broken
