"""The whole pipeline on one machine: moto, the gateway (emulated or real), the three handlers.

One LocalPipeline per process at a time: the handlers read their settings from the process
environment, as they do in Lambda.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from cutouts import constants as c
from cutouts import keys
from cutouts import settings_table as t
from cutouts.job_store import COMPLETED, FAILED, PARKED, JobStore
from cutouts.submit_budget import BATCH_SIZE as SUBMIT_BATCH_SIZE
from local.aws import LocalAws, LocalResources, create_resources, use_fake_credentials
from local.event_capture import EventCapture
from local.gateway_emulator import FaultConfig, GatewayEmulator
from local.lambda_runtime import ExecutionEnvironments, HttpApi, Schedule, SqsEventSource
from local.moto_server import AwsFaultConfig
from local.render_stack import create_render_queue, load_profiles, write_canonical

DEFAULT_API_KEY = "local-test-key"  # the emulator's key; not a secret


@dataclass
class LocalOptions:
    """Local defaults are seconds where the deployed stack has minutes, so a run recovers in-run.

    A field named like a setting (cutouts/settings_table.py) overrides it for the functions.
    """

    gateway_url: str | None = None
    api_key: str | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    aws_faults: AwsFaultConfig = field(default_factory=AwsFaultConfig)  # on the functions' S3 and DynamoDB calls
    input_prefix: str = t.DEFAULTS["input_prefix"]
    output_prefix: str = t.DEFAULTS["output_prefix"]
    failure_prefix: str = t.DEFAULTS["failure_prefix"]
    reconcile_every: float = 1.0
    stale_after_seconds: int = 3
    in_doubt_grace_seconds: int = 4
    max_age_seconds: int = 90
    max_attempts: int = 3
    max_receives: int = 5
    visibility_timeout: int = 8
    retry_base_seconds: int = 1
    pollers: int = 2
    webhook_environments: int = 4
    emulator_workers: int = 4
    http_timeout_seconds: float = 5.0
    max_image_bytes: int = t.DEFAULTS["max_image_bytes"]
    secret_max_age_seconds: int = 5
    log_level: str = "ERROR"
    unversioned_bucket: bool = False  # also a bucket never versioned, notifying the same queue
    daily_budget_usd: float = t.DEFAULTS["daily_budget_usd"]
    price_per_image_usd: float = t.DEFAULTS["price_per_image_usd"]
    profiles_file: str | None = None  # output profiles (JSON); None: the default profile, today's PNG cutout
    render_environments: int = 2


class Upload(NamedTuple):
    """One object version put by the harness, and the job the pipeline keys on it."""

    bucket: str
    key: str
    version: str  # the VersionId, or the ETag on a bucket that is not versioned
    job_id: str


@dataclass(frozen=True)
class Accounting:
    cutouts: list[str]
    failed: list[str]
    unaccounted: list[str]
    parked: list[str] = field(default_factory=list)  # held by the spend guard: accounted for, not lost

    @property
    def total(self) -> int:
        return len(self.cutouts) + len(self.failed) + len(self.parked) + len(self.unaccounted)

    def summary(self) -> str:
        return (
            f"{self.total} inputs: {len(self.cutouts)} cutouts, {len(self.failed)} failed, "
            f"{len(self.parked)} parked, {len(self.unaccounted)} unaccounted"
        )


class LocalPipeline:
    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        self.aws = LocalAws(self.options.aws_faults)
        self.emulator: GatewayEmulator | None = None
        self._resources: LocalResources | None = None
        self._parts: list[Any] = []
        self.handlers: dict[str, Any] = {}
        self._saved_environ: dict[str, str] = {}
        self._s3: Any = None
        self._job_store: JobStore | None = None

    @property
    def resources(self) -> LocalResources:
        if self._resources is None:
            raise RuntimeError("the local stack is not started")
        return self._resources

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalPipeline:
        opts = self.options
        self._saved_environ = dict(os.environ)
        endpoint = self.aws.start()
        use_fake_credentials(self.aws.functions_endpoint_url)  # the handlers' clients; the harness uses `endpoint`
        if opts.gateway_url:
            gateway_base, model_path = _split_gateway_url(opts.gateway_url)
            api_key = opts.api_key or DEFAULT_API_KEY
        else:
            api_key = opts.api_key or DEFAULT_API_KEY
            self.emulator = GatewayEmulator(api_key=api_key, faults=opts.faults, workers=opts.emulator_workers)
            self.emulator.start()
            gateway_base, model_path = self.emulator.base_url, self.emulator.model_path
        self._resources = create_resources(
            endpoint,
            api_key=api_key,
            input_prefix=opts.input_prefix,
            visibility_timeout=opts.visibility_timeout,
            max_receives=opts.max_receives,
            unversioned_bucket=opts.unversioned_bucket,
        )
        self.events = EventCapture(self.resources.client)  # the run's completion events (events.jsonl)
        self.events.start()
        self.profiles = load_profiles(opts.profiles_file)
        self.render_queue = create_render_queue(
            self._resources.client("sqs"),
            self._resources.bucket.removesuffix("-bucket"),
            opts.visibility_timeout,
            opts.max_receives,
        )
        api = HttpApi(self._invoke_webhook)
        api.start()
        self._parts.append(api)
        self.callback_base_url = api.base_url
        self._configure_functions(gateway_base, model_path)

        sqs = self.resources.client("sqs")
        poller = SqsEventSource(
            sqs,
            self.resources.queue_url,
            self.resources.queue_arn,
            self.handlers["submit"].invoke,
            batch_size=SUBMIT_BATCH_SIZE,  # the deployed event source mapping's
            concurrency=opts.pollers,
        )
        schedule = Schedule(self.handlers["reconcile"].invoke, opts.reconcile_every)
        renderer = SqsEventSource(
            sqs,
            self.render_queue.url,
            self.render_queue.arn,
            self.handlers["render"].invoke,
            batch_size=c.RENDER_BATCH_SIZE,
            concurrency=opts.render_environments,
            function_name="render",
        )
        poller.start()
        schedule.start()
        renderer.start()
        self._parts += [poller, schedule, renderer]
        self.renderer = renderer
        self.poller, self.schedule, self.api = poller, schedule, api
        return self

    def stop(self) -> None:
        for part in reversed(self._parts):
            part.stop()
        self._parts.clear()
        if self.emulator is not None:
            self.emulator.stop()
        self.aws.stop()
        # The handlers read the process environment: leave it as it was, and forget the clients.
        os.environ.clear()
        os.environ.update(self._saved_environ)
        from cutouts import runtime

        runtime.reset()

    def __enter__(self) -> LocalPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _invoke_webhook(self, event: dict[str, Any], context: Any) -> Any:
        return self.handlers["webhook"].invoke(event, context)

    def _configure_functions(self, gateway_base: str, model_path: str) -> None:
        opts, res = self.options, self.resources
        media = urlsplit(gateway_base)
        overrides = {f.name: getattr(opts, f.name) for f in fields(opts) if f.name in t.BY_ATTR}
        settings = {
            **overrides,
            "table_name": res.table_name,
            "gateway_base_url": gateway_base,
            "gateway_model_path": model_path,
            "gateway_key_secret": res.gateway_key_secret,
            "signing_secret": res.signing_secret,
            "callback_base_url": self.callback_base_url,
            "allowed_media_hosts": (media.netloc.lower(),),
            "allow_http_media": media.scheme == "http",
            "dlq_url": res.dlq_url,
            "profiles_path": write_canonical(self.profiles),
            "render_queue_url": self.render_queue.url,
            "render_dlq_url": self.render_queue.dlq_url,
            "queue_url": res.queue_url,
        }
        os.environ.update(
            {
                **t.environment(settings),
                "POWERTOOLS_SERVICE_NAME": c.SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": c.METRICS_NAMESPACE,
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": opts.log_level,
            }
        )
        from cutouts import runtime

        runtime.reset()
        sizes = {
            "submit": opts.pollers,
            "webhook": opts.webhook_environments,
            "reconcile": 1,
            "render": opts.render_environments,
        }
        for name, path in (
            ("submit", c.SUBMIT_HANDLER),
            ("webhook", c.WEBHOOK_HANDLER),
            ("reconcile", c.RECONCILE_HANDLER),
            ("render", c.RENDER_HANDLER),
        ):
            self.handlers[name] = ExecutionEnvironments(path.rsplit(".", 1)[0], sizes[name])
        from cutouts.observability import logger

        logger.setLevel(opts.log_level)

    # --- use -----------------------------------------------------------------------------

    def s3(self) -> Any:
        """One S3 client for the user's side of the run (clients are thread-safe, and slow to make)."""
        if self._s3 is None:
            self._s3 = self.resources.client("s3")
        return self._s3

    def upload(self, relative_key: str, data: bytes, bucket: str | None = None) -> str:
        """Put one object under the input prefix, as a user would; return the S3 key."""
        return self.put(relative_key, data, bucket).key

    def put(
        self, relative_key: str, data: bytes, bucket: str | None = None, metadata: dict[str, str] | None = None
    ) -> Upload:
        """Like :meth:`upload`, naming the version put and the job id the functions will give it."""
        bucket = bucket or self.resources.bucket
        key = self.options.input_prefix + relative_key
        answer = self.s3().put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata or {})
        version = keys.job_version(answer.get("VersionId"), answer.get("ETag"))
        return Upload(bucket, key, version, keys.job_id_for(bucket, key, version))

    def upload_tree(self, directory: Path, parallel: int = 8) -> list[str]:
        """Upload every file under ``directory``, keeping relative paths (as ``aws s3 sync`` would)."""
        from concurrent.futures import ThreadPoolExecutor

        files = sorted(p for p in directory.rglob("*") if p.is_file())
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return list(pool.map(lambda p: self.upload(p.relative_to(directory).as_posix(), p.read_bytes()), files))

    def account(
        self,
        input_keys: Iterable[str],
        newest: Mapping[str, str] | None = None,
        bucket: str | None = None,
        _settled: dict[str, str] | None = None,
    ) -> Accounting:
        """Which inputs have a cutout, which a failure report, which neither (yet).

        ``newest`` maps input keys to the job id of their newest upload (:meth:`put`): such a key
        counts only once that job has ended (COMPLETED or FAILED) and the cutout or report there
        is its own. Any output does for the other keys.
        """
        opts, bucket = self.options, bucket or self.resources.bucket
        newest = newest or {}
        settled = {} if _settled is None else _settled
        outputs = self.list_keys(opts.output_prefix, bucket)
        reports = self.list_keys(opts.failure_prefix, bucket)
        done: list[str] = []
        failed: list[str] = []
        parked: list[str] = []
        missing: list[str] = []
        for key in input_keys:
            report_key = keys.failure_key_for(key, opts.input_prefix, opts.failure_prefix)
            # Done when each output of the key's profile (or that output's own report) exists.
            output_key = self._all_outputs(key, outputs, reports)
            if key in newest:
                if key not in settled:
                    outcome = self._outcome_of(
                        bucket, newest[key], output_key, report_key if report_key in reports else None
                    )
                    if outcome:
                        settled[key] = outcome
                outcome = settled.get(key)
            elif output_key is not None:
                outcome = "cutout"
            else:
                outcome = "failed" if report_key in reports else None
            if outcome is None and self._parked(bucket, key, newest.get(key)):
                outcome = "parked"
            {"cutout": done, "failed": failed, "parked": parked, None: missing}[outcome].append(key)
        return Accounting(done, failed, missing, parked)

    def _parked(self, bucket: str, key: str, job_id: str | None) -> bool:
        """The key's newest job (or this one) waits for budget: the spend guard holds it, nothing is lost."""
        job_id = job_id or self.job_store().latest_job_for(bucket, key)
        job = self.job_store().get(job_id) if job_id else None
        return job is not None and job.status == PARKED

    def use_profiles(self, profiles_file: str | None) -> None:
        """Deploy other profiles: the functions read the new file from their next invocation on."""
        from cutouts import runtime

        self.profiles = load_profiles(profiles_file)
        os.environ[t.ENV_NAMES["profiles_path"]] = write_canonical(self.profiles)
        runtime.reset()

    def expected_outputs(self, key: str) -> list[tuple[str, str]]:
        """(output key, its report's key) for each output of the profile the key's path chooses."""
        from cutouts.masters import output_report_key
        from cutouts.profiles import output_key

        opts = self.options
        relative = keys.relative_key(key, opts.input_prefix)
        profile = self.profiles.choose(relative)
        return [
            (
                output_key(opts.output_prefix, relative, spec),
                output_report_key(key, opts.input_prefix, opts.failure_prefix, spec.name),
            )
            for spec in profile.outputs
        ]

    def _all_outputs(self, key: str, outputs: set[str], reports: set[str]) -> str | None:
        """The first output's key once every output (or its report) exists; None if one is missing."""
        expected = self.expected_outputs(key)
        if all(out in outputs or report in reports for out, report in expected):
            return next((out for out, _ in expected if out in outputs), None)
        return None

    def _outcome_of(self, bucket: str, job_id: str, output_key: str | None, report_key: str | None) -> str | None:
        """ "cutout" or "failed" if that job has ended with its own output in place (given keys exist), else None."""
        if output_key is None and report_key is None:
            return None
        job = self.job_store().get(job_id)
        if job is None or job.status not in (COMPLETED, FAILED):
            return None
        if job.status == COMPLETED and output_key:
            head = self.s3().head_object(Bucket=bucket, Key=output_key)
            if head["Metadata"].get("job-id") == job_id:
                return "cutout"
        if job.status == FAILED and report_key:
            report = json.loads(self.s3().get_object(Bucket=bucket, Key=report_key)["Body"].read())
            if report.get("job_id") == job_id:
                return "failed"
        return None

    def job_store(self) -> JobStore:
        """The job table, read with the harness's client (no injected faults), made once: clients are slow to make."""
        if self._job_store is None:
            self._job_store = JobStore(self.resources.client("dynamodb"), self.resources.table_name)
        return self._job_store

    def wait(
        self,
        input_keys: list[str],
        timeout: float,
        progress: Callable[[Accounting], None] | None = None,
        newest: Mapping[str, str] | None = None,
        bucket: str | None = None,
    ) -> Accounting:
        """Poll until every input is accounted for (see :meth:`account`), or the time-out passes."""
        deadline = time.monotonic() + timeout
        settled: dict[str, str] = {}  # a newest version, once ended with its output, stays so
        while True:
            accounting = self.account(input_keys, newest, bucket, settled)
            if progress:
                progress(accounting)
            if not accounting.unaccounted or time.monotonic() >= deadline:
                return accounting
            time.sleep(min(2.0, 0.3 + len(input_keys) / 500))  # listing a big bucket costs moto time

    def mirror(self, output_dir: Path) -> int:
        """Copy the bucket's output and failure prefixes into ``output_dir``."""
        s3, count = self.s3(), 0
        for prefix in (self.options.output_prefix, self.options.failure_prefix):
            for key in sorted(self.list_keys(prefix)):
                target = output_dir / key
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=self.resources.bucket, Key=key)["Body"].read())
                count += 1
        return count

    def list_keys(self, prefix: str, bucket: str | None = None) -> set[str]:
        """Every key under ``prefix`` (in the pipeline's bucket unless another is named)."""
        found: set[str] = set()
        paginator = self.s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket or self.resources.bucket, Prefix=prefix):
            found.update(obj["Key"] for obj in page.get("Contents", []))
        return found


def _split_gateway_url(url: str) -> tuple[str, str]:
    """``http://host:port`` uses the reference's model path; a URL with a path names its own."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--gateway-url {url!r} must look like https://host[:port][/model/path]")
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    return base, path or t.DEFAULTS["gateway_model_path"]
