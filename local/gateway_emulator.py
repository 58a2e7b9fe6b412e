"""A local, faithful emulator of the Pixazo gateway serving Bria RMBG 2.0.

It implements the reference (``shared/reference/gateway-api-bria-rmbg-2.0.txt``) over real HTTP
on loopback, so the pipeline's gateway adapter, callback route and reconciler are exercised
exactly as in production:

* ``POST {model_path}`` (default ``/bria-rmbg-2-0-682/v1/bria-rmbg-2-0-request``): key in
  ``Ocp-Apim-Subscription-Key``, JSON body ``{"image_url": ...}``, optional ``X-Webhook-URL``;
  answers 202 ``{"request_id", "status": "QUEUED", "polling_url"}`` or an error.
* ``GET /v2/requests/status/{request_id}``: key required; the status document.
* ``GET /media/{request_id}/output.png``: the cutout, no key (it stands in for the R2 CDN).
* ``GET /_emulator/stats``: accounting for tests (not part of the reference).

Jobs run on worker threads: QUEUED, PROCESSING, then the emulator downloads ``image_url`` (a
presigned S3 URL in the local stack: the real gateway fetches it, so we do too), removes the
background with :func:`local.background_removal.remove_background` and ends COMPLETED, or FAILED
or ERROR. Terminal states are POSTed to the ``X-Webhook-URL`` with the status document as body.

Faults (:class:`FaultConfig`) make it misbehave the ways a remote gateway does: slow jobs, 429
with ``Retry-After``, 5xx, FAILED and ERROR jobs, jobs stuck in PROCESSING, dropped, duplicated
and late call-backs, an empty wallet (402), and COMPLETED answers whose ``media_url`` is
malformed or points somewhere the pipeline must not fetch from (:data:`MALFORMED_MEDIA_URLS`).

Choices where the reference is silent (also in the README):

* Error bodies are JSON ``{"error": ..., "message": ...}`` like the reference's queue errors,
  for 401, 404, 405, 429 and 5xx too.
* A POST to ``/{model}/v1/{operation}`` for another model answers **400** "Model not found" (the
  reference's code for an unknown or disabled model); any other unknown path answers 404. The
  key is checked before the model (the queue system sits behind the key check); unknown paths
  answer 404 whatever the key (as API Management does for an unknown operation).
* Check order on submit: 401 key, 400 model, 429 rate limit, 400 body, 402 balance, 5xx, 202.
  A rejected submission creates no job and is not charged.
* FAILED (injected, or the image could not be fetched or decoded) is a model failure and is
  **charged**; ERROR ("system error - not charged") is not; COMPLETED is charged. Charges are
  counted per source object version and per SHA-256 of the bytes fetched (a FAILED job fetches
  its image first, as a model failure comes after the download).
* Every status document carries all of ``request_id, status, model_id, error, output,
  created_at, updated_at, completed_at``; ``completed_at`` is set for every terminal state
  (COMPLETED, FAILED, ERROR) and null before; ``output`` is null unless COMPLETED.
* Call-backs go out for terminal states only, as ``POST`` with ``Content-Type:
  application/json``, a 5 s timeout, **no redirects followed** (a 3xx is a failed delivery),
  and up to 3 attempts (0.25 s, then 0.5 s apart) on a connection error or a 5xx; a 2xx-4xx
  answer ends the delivery.
* Media are served as ``application/octet-stream``, the ``media_type`` the status reports.
* ``request_id`` is ``{model_id}_{uuid7}`` (the reference's ``019d...`` ids are time-ordered).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import queue
import random
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import urllib3

from local.background_removal import remove_background

logger = logging.getLogger("local.gateway")

DEFAULT_MODEL_PATH = "/bria-rmbg-2-0-682/v1/bria-rmbg-2-0-request"
STATUS_PATH = "/v2/requests/status/"
MEDIA_PATH = "/media/"
STATS_PATH = "/_emulator/stats"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
WEBHOOK_HEADER = "X-Webhook-URL"
MEDIA_TYPE = "application/octet-stream"
DEFAULT_API_KEY = "local-test-key"
DEFAULT_PORT = 8765

CALLBACK_ATTEMPTS = 3
CALLBACK_BACKOFF_SECONDS = (0.25, 0.5)
CALLBACK_TIMEOUT_SECONDS = 5.0
DUPLICATE_CALLBACK_GAP_SECONDS = 0.05
FETCH_TIMEOUT_SECONDS = 10.0
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_BODY_BYTES = 1024 * 1024

# Media URLs a COMPLETED answer may carry under the malformed-media-url fault: unparseable, a port
# that is no number or out of range, a scheme that is not https, hosts off the allow-list
# (the reference's own CDN, cloud metadata), and no host at all. ``{rid}`` is the request id,
# ``{netloc}`` the emulator's host:port.
MALFORMED_MEDIA_URLS = (
    "https://[pub-{rid}.r2.dev/output.png",
    "http://{netloc}x/media/{rid}/output.png",
    "https://pub-{rid}.r2.dev:99999/output.png",
    "ftp://{netloc}/media/{rid}/output.png",
    "https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/{rid}/output.png",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "/media/{rid}/output.png",
)

_MODEL_ROUTE = re.compile(r"^/([^/]+)/v1/[^/]+$")
_SERVER_ERRORS = {
    500: ("Internal Server Error", "An unexpected error occurred. Please try again later."),
    502: ("Bad Gateway", "The upstream model service returned an invalid response."),
    503: ("Service Unavailable", "The service is temporarily unavailable. Please try again later."),
}


class _Server(ThreadingHTTPServer):
    """The standard threading server, with a listen backlog for bursts (the default is 5)."""

    request_queue_size = 128
    daemon_threads = True


@dataclass
class FaultConfig:
    """How the emulator misbehaves. Rates are probabilities in [0, 1], drawn per request.

    ``rate_stuck + rate_error + rate_failed`` and ``rate_drop_callback +
    rate_duplicate_callback`` must each be at most 1 (they are exclusive outcomes).
    ``queued_delay`` (an addition to the brief's fields) keeps a job QUEUED that long before a
    worker takes it, so the QUEUED state can be observed.
    """

    processing_delay: float = 0.2
    rate_429: float = 0
    retry_after_seconds: int = 1
    rate_5xx: float = 0
    rate_failed: float = 0
    rate_error: float = 0
    rate_stuck: float = 0
    rate_drop_callback: float = 0
    rate_duplicate_callback: float = 0
    rate_late_callback: float = 0
    late_callback_delay: float = 1.0
    insufficient_balance: bool = False
    seed: int | None = None
    queued_delay: float = 0.0
    rate_malformed_media_url: float = 0  # share of COMPLETED jobs whose media_url is malformed

    def __post_init__(self) -> None:
        for name in (
            "rate_429",
            "rate_5xx",
            "rate_failed",
            "rate_error",
            "rate_stuck",
            "rate_drop_callback",
            "rate_duplicate_callback",
            "rate_late_callback",
            "rate_malformed_media_url",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in ("processing_delay", "late_callback_delay", "queued_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must not be negative")
        if self.rate_stuck + self.rate_error + self.rate_failed > 1:
            raise ValueError("rate_stuck + rate_error + rate_failed must be at most 1")
        if self.rate_drop_callback + self.rate_duplicate_callback > 1:
            raise ValueError("rate_drop_callback + rate_duplicate_callback must be at most 1")


@dataclass
class _Job:
    request_id: str
    model_id: str
    image_url: str
    source: str
    webhook_url: str | None
    fate: str  # "complete", "failed", "error" or "stuck", drawn at submission
    callback_plan: str  # "send", "drop" or "duplicate"
    late_callback: bool
    created_at: str
    updated_at: str
    status: str = "QUEUED"
    error: str | None = None
    output: dict[str, Any] | None = None
    completed_at: str | None = None
    charged: bool = False
    content_sha256: str | None = None  # of the bytes fetched from image_url, once fetched
    media_sha256: str | None = None  # of the cutout served, once COMPLETED
    malformed_media_url: str | None = None  # served instead of the real one (fault), if COMPLETED
    callbacks_delivered: int = 0
    callback_bodies: list[dict[str, Any]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status": self.status,
            "model_id": self.model_id,
            "error": self.error,
            "output": self.output,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
        }


def _timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _uuid7() -> uuid.UUID:
    """A time-ordered UUID version 7 (RFC 9562), as the reference's ids look."""
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (random_bits >> 62 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= random_bits & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def source_of(image_url: str) -> str:
    """The accounting key of an image URL: its decoded path, plus ``?versionId=`` if present.

    Presigned URLs of one object differ in their signature query parameters on every
    submission; the path and version identify what was actually processed.
    """
    parts = urlsplit(image_url)
    source = unquote(parts.path)
    versions = parse_qs(parts.query).get("versionId")
    if versions:
        source += f"?versionId={versions[0]}"
    return source


class GatewayEmulator:
    """The gateway on ``host:port`` (port 0 picks a free one), with ``workers`` job threads."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        faults: FaultConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 4,
        *,
        model_path: str = DEFAULT_MODEL_PATH,
    ) -> None:
        match = _MODEL_ROUTE.match(model_path)
        if not match:
            raise ValueError(f"model_path must look like /MODEL/v1/OPERATION, got {model_path!r}")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.api_key = api_key
        self.faults = faults or FaultConfig()
        self.host = host
        self.port = port
        self.workers = workers
        self.model_path = model_path
        self.model_id = match.group(1)
        self.requests_log: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.callbacks_log: deque[dict[str, Any]] = deque(maxlen=10_000)
        self._jobs: dict[str, _Job] = {}
        self._media: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._random = random.Random(self.faults.seed)
        self._counters: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._accepted_by_source: Counter[str] = Counter()
        self._charged_by_source: Counter[str] = Counter()
        self._charged_by_content: Counter[str] = Counter()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self._http = urllib3.PoolManager(num_pools=16, maxsize=8)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> GatewayEmulator:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._stop.clear()
        server = _Server((self.host, self.port), _Handler)
        server.daemon_threads = True
        server.emulator = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        serve = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="gateway-http", daemon=True
        )
        serve.start()
        self._threads = [serve]
        for index in range(self.workers):
            worker = threading.Thread(target=self._work, name=f"gateway-worker-{index}", daemon=True)
            worker.start()
            self._threads.append(worker)
        logger.info("gateway emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        for _ in range(self.workers):
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []
        self._http.clear()

    def __enter__(self) -> GatewayEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def submit_url(self) -> str:
        return self.base_url + self.model_path

    # ----------------------------------------------------------------- accounting

    def stats(self) -> dict[str, Any]:
        """Counters for tests; the same document as ``GET /_emulator/stats``.

        ``requests_total`` counts submissions (POSTs to a model path), accepted or not;
        ``rejected`` maps an HTTP status (as a string) to how many submissions got it;
        ``charged_by_source`` counts COMPLETED and FAILED jobs per :func:`source_of` key;
        ``charged_by_content`` the same per SHA-256 of the bytes fetched (``unfetched:SOURCE``
        when the fetch failed).
        """
        with self._lock:
            by_status = Counter(job.status for job in self._jobs.values())
            return {
                "requests_total": self._counters["requests_total"],
                "accepted": self._counters["accepted"],
                "rejected": dict(sorted(self._rejected.items())),
                "accepted_by_source": dict(self._accepted_by_source),
                "charged_by_source": dict(self._charged_by_source),
                "charged_by_content": dict(self._charged_by_content),
                "malformed_media_urls": self._counters["malformed_media_urls"],
                "charged": sum(self._charged_by_source.values()),
                "completed": self._counters["completed"],
                "failed": self._counters["failed"],
                "errors": self._counters["errors"],
                "stuck": self._counters["stuck"],
                "by_status": dict(by_status),
                "status_polls": self._counters["status_polls"],
                "media_downloads": self._counters["media_downloads"],
                "callbacks_sent": self._counters["callbacks_sent"],
                "callbacks_failed": self._counters["callbacks_failed"],
                "callbacks_dropped": self._counters["callbacks_dropped"],
                "callbacks_duplicated": self._counters["callbacks_duplicated"],
                "callbacks_late": self._counters["callbacks_late"],
                "jobs": {
                    job.request_id: {
                        "source": job.source,
                        "status": job.status,
                        "charged": job.charged,
                        "content_sha256": job.content_sha256,
                        "media_sha256": job.media_sha256,
                        "malformed_media_url": job.malformed_media_url,
                        "webhook_url": job.webhook_url,
                        "callbacks_delivered": job.callbacks_delivered,
                    }
                    for job in self._jobs.values()
                },
            }

    def status_document(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(request_id)
            return job.document() if job else None

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    # ----------------------------------------------------------------- submission

    def _submit(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Decide the answer to a submission: (status, JSON body, extra headers)."""
        self._count("requests_total")
        status, document, extra = self._admit(path, headers, body)
        if status != 202:
            with self._lock:
                self._rejected[str(status)] += 1
        return status, document, extra

    def _admit(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        denied = self._check_key(headers)
        if denied:
            return 401, denied, {}
        model = _MODEL_ROUTE.match(path)
        assert model is not None
        if path != self.model_path:
            return (
                400,
                {
                    "error": "Model not found",
                    "message": f"Model '{model.group(1)}' not found or is disabled",
                },
                {},
            )
        faults = self.faults
        with self._lock:
            throttled = self._random.random() < faults.rate_429
            server_error = self._random.random() < faults.rate_5xx
            error_code = self._random.choice(sorted(_SERVER_ERRORS))
        if throttled:
            return (
                429,
                {
                    "error": "Too Many Requests",
                    "message": f"Rate limit is exceeded. Try again in {faults.retry_after_seconds} seconds.",
                },
                {"Retry-After": str(faults.retry_after_seconds)},
            )
        try:
            payload = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 400, {"error": "Bad Request", "message": "Request body must be valid JSON."}, {}
        image_url = payload.get("image_url") if isinstance(payload, dict) else None
        if not isinstance(image_url, str) or not image_url.strip():
            return 400, {"error": "Bad Request", "message": "'image_url' is required."}, {}
        if urlsplit(image_url).scheme not in ("http", "https") or not urlsplit(image_url).netloc:
            return (
                400,
                {"error": "Bad Request", "message": "'image_url' must be an http(s) URL."},
                {},
            )
        webhook_url = headers.get(WEBHOOK_HEADER)
        if webhook_url is not None and (
            urlsplit(webhook_url).scheme not in ("http", "https") or not urlsplit(webhook_url).netloc
        ):
            return (
                400,
                {"error": "Bad Request", "message": f"'{WEBHOOK_HEADER}' must be an http(s) URL."},
                {},
            )
        if faults.insufficient_balance:
            return (
                402,
                {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."},
                {},
            )
        if server_error:
            title, message = _SERVER_ERRORS[error_code]
            return error_code, {"error": title, "message": message}, {}
        job = self._create_job(image_url, webhook_url)
        self._queue.put(job.request_id)
        return (
            202,
            {
                "request_id": job.request_id,
                "status": "QUEUED",
                "polling_url": f"{self.base_url}{STATUS_PATH}{job.request_id}",
            },
            {},
        )

    def _check_key(self, headers: Any) -> dict[str, Any] | None:
        key = headers.get(KEY_HEADER)
        if not key:
            return {
                "error": "Unauthorized",
                "message": "Access denied due to missing subscription key. Make sure to include "
                "subscription key when making requests to an API.",
            }
        if key != self.api_key:
            return {
                "error": "Unauthorized",
                "message": "Access denied due to invalid subscription key. Make sure to provide "
                "a valid key for an active subscription.",
            }
        return None

    def _create_job(self, image_url: str, webhook_url: str | None) -> _Job:
        faults = self.faults
        with self._lock:
            fate_draw = self._random.random()
            callback_draw = self._random.random()
            late_draw = self._random.random()
            # drawn only when asked for, so other faults keep their sequence for a given seed
            malformed = (
                self._random.choice(MALFORMED_MEDIA_URLS)
                if faults.rate_malformed_media_url and self._random.random() < faults.rate_malformed_media_url
                else None
            )
        if fate_draw < faults.rate_stuck:
            fate = "stuck"
        elif fate_draw < faults.rate_stuck + faults.rate_error:
            fate = "error"
        elif fate_draw < faults.rate_stuck + faults.rate_error + faults.rate_failed:
            fate = "failed"
        else:
            fate = "complete"
        if callback_draw < faults.rate_drop_callback:
            plan = "drop"
        elif callback_draw < faults.rate_drop_callback + faults.rate_duplicate_callback:
            plan = "duplicate"
        else:
            plan = "send"
        now = _timestamp()
        job = _Job(
            request_id=f"{self.model_id}_{_uuid7()}",
            model_id=self.model_id,
            image_url=image_url,
            source=source_of(image_url),
            webhook_url=webhook_url,
            fate=fate,
            callback_plan=plan,
            late_callback=late_draw < faults.rate_late_callback,
            created_at=now,
            updated_at=now,
        )
        if malformed is not None:
            job.malformed_media_url = malformed.format(rid=job.request_id, netloc=urlsplit(self.base_url).netloc)
        with self._lock:
            self._jobs[job.request_id] = job
            self._counters["accepted"] += 1
            self._accepted_by_source[job.source] += 1
        logger.info("accepted %s for %s (fate %s)", job.request_id, job.source, fate)
        return job

    # ----------------------------------------------------------------- processing

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                request_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if request_id is None:
                return
            try:
                self._process(request_id)
            except Exception:  # a bug here must not kill the worker
                logger.exception("processing %s crashed", request_id)
                self._finish(request_id, "ERROR", error="Internal error in the gateway emulator.")

    def _process(self, request_id: str) -> None:
        if self._stop.wait(self.faults.queued_delay):
            return
        with self._lock:
            job = self._jobs[request_id]
            job.status = "PROCESSING"
            job.updated_at = _timestamp()
            fate, image_url = job.fate, job.image_url
        started = time.monotonic()
        if fate == "stuck":
            self._count("stuck")
            logger.info("%s stays PROCESSING (stuck)", request_id)
            return
        png: bytes | None = None
        error: str | None = None
        if fate in ("complete", "failed"):
            data, error = self._fetch(image_url)
            if data is not None:
                with self._lock:
                    job.content_sha256 = hashlib.sha256(data).hexdigest()
                if fate == "complete":
                    png, error = self._cut_out(data)
        if self._stop.wait(max(0.0, self.faults.processing_delay - (time.monotonic() - started))):
            return
        if fate == "error":
            self._finish(request_id, "ERROR", error="Internal system error while processing the request.")
        elif fate == "failed":
            self._finish(request_id, "FAILED", error="Model inference failed for this input.")
        elif png is None:
            self._finish(request_id, "FAILED", error=error)
        else:
            with self._lock:
                self._media[request_id] = png
                job.media_sha256 = hashlib.sha256(png).hexdigest()
            self._finish(request_id, "COMPLETED")

    def _fetch(self, image_url: str) -> tuple[bytes | None, str | None]:
        """Download the image: (bytes, None) or (None, reason for FAILED)."""
        try:
            response = self._http.request(
                "GET",
                image_url,
                timeout=urllib3.Timeout(total=FETCH_TIMEOUT_SECONDS),
                retries=urllib3.Retry(total=2, redirect=3, raise_on_status=False),
                preload_content=False,
            )
            try:
                data = response.read(MAX_IMAGE_BYTES + 1)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            return None, f"Failed to download image_url: {reason.__class__.__name__}"
        if response.status != 200:
            return None, f"Failed to download image_url: HTTP {response.status}"
        if len(data) > MAX_IMAGE_BYTES:
            return None, "Input image is too large."
        return data, None

    def _cut_out(self, data: bytes) -> tuple[bytes | None, str | None]:
        """Cut out the image: (PNG, None) or (None, reason for FAILED)."""
        try:
            return remove_background(data), None
        except ValueError as exc:
            return None, f"Input is not a valid image: {exc}"

    def _finish(self, request_id: str, status: str, error: str | None = None) -> None:
        now = _timestamp()
        with self._lock:
            job = self._jobs[request_id]
            job.status = status
            job.error = error
            job.updated_at = job.completed_at = now
            if status == "COMPLETED":
                job.output = {
                    "media_url": [job.malformed_media_url or f"{self.base_url}{MEDIA_PATH}{request_id}/output.png"],
                    "media_type": MEDIA_TYPE,
                }
                if job.malformed_media_url:
                    self._counters["malformed_media_urls"] += 1
            if status in ("COMPLETED", "FAILED"):
                job.charged = True
                self._charged_by_source[job.source] += 1
                self._charged_by_content[job.content_sha256 or f"unfetched:{job.source}"] += 1
            self._counters[{"COMPLETED": "completed", "FAILED": "failed", "ERROR": "errors"}[status]] += 1
            document = job.document()
            webhook_url, plan, late = job.webhook_url, job.callback_plan, job.late_callback
        logger.info("%s %s%s", request_id, status, f": {error}" if error else "")
        if webhook_url is None:
            return
        if plan == "drop":
            self._count("callbacks_dropped")
            logger.info("%s call-back dropped (fault)", request_id)
            return
        copies = 2 if plan == "duplicate" else 1
        if copies == 2:
            self._count("callbacks_duplicated")
        if late:
            self._count("callbacks_late")
        threading.Thread(
            target=self._deliver,
            args=(
                request_id,
                webhook_url,
                document,
                copies,
                self.faults.late_callback_delay if late else 0.0,
            ),
            name=f"gateway-callback-{request_id[-8:]}",
            daemon=True,
        ).start()

    # ----------------------------------------------------------------- call-backs

    def _deliver(self, request_id: str, url: str, document: dict[str, Any], copies: int, delay: float) -> None:
        if self._stop.wait(delay):
            return
        body = json.dumps(document).encode("utf-8")
        for copy in range(copies):
            if copy and self._stop.wait(DUPLICATE_CALLBACK_GAP_SECONDS):
                return
            self._post_callback(request_id, url, body)

    def _post_callback(self, request_id: str, url: str, body: bytes) -> None:
        status: int | None = None
        problem = ""
        attempts = 0
        for attempts in range(1, CALLBACK_ATTEMPTS + 1):
            try:
                response = self._http.request(
                    "POST",
                    url,
                    body=body,
                    headers={"Content-Type": "application/json", "User-Agent": "pixazo-gateway-emulator"},
                    timeout=urllib3.Timeout(total=CALLBACK_TIMEOUT_SECONDS),
                    retries=False,
                    redirect=False,
                )
                status = response.status
                problem = "" if status < 500 else f"HTTP {status}"
            except urllib3.exceptions.HTTPError as exc:
                status, problem = None, exc.__class__.__name__
            if not problem or attempts == CALLBACK_ATTEMPTS:
                break
            if self._stop.wait(CALLBACK_BACKOFF_SECONDS[min(attempts, len(CALLBACK_BACKOFF_SECONDS)) - 1]):
                return
        delivered = status is not None and 200 <= status < 300
        with self._lock:
            self._counters["callbacks_sent" if delivered else "callbacks_failed"] += 1
            job = self._jobs.get(request_id)
            if job and delivered:
                job.callbacks_delivered += 1
        self.callbacks_log.append(
            {
                "request_id": request_id,
                "url": url,
                "status": status,
                "attempts": attempts,
                "error": problem or None,
            }
        )
        logger.info("%s call-back -> %s (%s attempt(s))", request_id, status or problem, attempts)

    # ----------------------------------------------------------------- reads

    def _poll(self, request_id: str, headers: Any) -> tuple[int, dict[str, Any]]:
        denied = self._check_key(headers)
        if denied:
            return 401, denied
        self._count("status_polls")
        document = self.status_document(request_id)
        if document is None:
            return 404, {"error": "Not Found", "message": f"Request '{request_id}' not found"}
        return 200, document

    def _media_bytes(self, request_id: str) -> bytes | None:
        with self._lock:
            return self._media.get(request_id)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PixazoGatewayEmulator/1.0"
    timeout = 30  # idle keep-alive connections close, so threads do not linger

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add 40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def emulator(self) -> GatewayEmulator:
        return self.server.emulator  # type: ignore[attr-defined, no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
        head_only: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)
        path = urlsplit(self.path).path
        self.emulator.requests_log.append(
            {"time": _timestamp(), "method": self.command, "path": path, "status": status}
        )

    def _send_json(self, status: int, document: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(document).encode("utf-8"), extra=extra)

    def _not_found(self) -> None:
        self._send_json(404, {"error": "Not Found", "message": "Resource not found"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = self._read_body()
        path = urlsplit(self.path).path
        if not _MODEL_ROUTE.match(path):
            self._not_found()
            return
        if body is None:
            self.close_connection = True
            self._send_json(413, {"error": "Payload Too Large", "message": "Request body is too large."})
            return
        status, document, extra = self.emulator._submit(path, self.headers, body)
        self._send_json(status, document, extra)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._read(head_only=False)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._read(head_only=True)

    def _read(self, head_only: bool) -> None:
        path = urlsplit(self.path).path
        emulator = self.emulator
        if path.startswith(STATUS_PATH):
            status, document = emulator._poll(unquote(path[len(STATUS_PATH) :]), self.headers)
            self._send(status, json.dumps(document).encode("utf-8"), head_only=head_only)
        elif path.startswith(MEDIA_PATH) and path.endswith("/output.png"):
            png = emulator._media_bytes(unquote(path[len(MEDIA_PATH) : -len("/output.png")]))
            if png is None:
                self._not_found()
                return
            emulator._count("media_downloads")
            self._send(200, png, content_type=MEDIA_TYPE, head_only=head_only)
        elif path == STATS_PATH:
            self._send(200, json.dumps(emulator.stats()).encode("utf-8"), head_only=head_only)
        elif _MODEL_ROUTE.match(path):
            self._send_json(405, {"error": "Method Not Allowed", "message": "Use POST."}, {"Allow": "POST"})
        else:
            self._not_found()


# --------------------------------------------------------------------- command line


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"seconds must not be negative, got {text}")
    return value


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m local gateway``."""
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--api-key",
        default=DEFAULT_API_KEY,
        help=f"the Ocp-Apim-Subscription-Key clients must send (default {DEFAULT_API_KEY!r})",
    )
    parser.add_argument("--model-path", default=DEFAULT_MODEL_PATH, help=f"submit path (default {DEFAULT_MODEL_PATH})")
    parser.add_argument("--workers", type=int, default=4, help="jobs processed in parallel (default 4)")
    parser.add_argument("--delay", type=_seconds, default=1.0, help="seconds a job spends PROCESSING (default 1.0)")
    parser.add_argument(
        "--queued-delay", type=_seconds, default=0.0, help="seconds a job stays QUEUED first (default 0)"
    )
    parser.add_argument("--rate-429", type=_rate, default=0.0, help="share of submissions answered 429 (0-1)")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds sent with a 429 (default 1)")
    parser.add_argument(
        "--rate-5xx", type=_rate, default=0.0, help="share of submissions answered 500, 502 or 503 (0-1)"
    )
    parser.add_argument("--rate-failed", type=_rate, default=0.0, help="share of jobs ending FAILED, charged (0-1)")
    parser.add_argument("--rate-error", type=_rate, default=0.0, help="share of jobs ending ERROR, not charged (0-1)")
    parser.add_argument(
        "--rate-stuck", type=_rate, default=0.0, help="share of jobs that stay PROCESSING forever (0-1)"
    )
    parser.add_argument(
        "--drop-callbacks",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of call-backs never sent (0-1)",
    )
    parser.add_argument(
        "--duplicate-callbacks",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of call-backs sent twice (0-1)",
    )
    parser.add_argument(
        "--late-callbacks",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of call-backs sent only after --late-callback-delay (0-1)",
    )
    parser.add_argument(
        "--late-callback-delay",
        type=_seconds,
        default=5.0,
        help="extra seconds before a late call-back (default 5)",
    )
    parser.add_argument(
        "--rate-malformed-media-url",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of COMPLETED jobs whose media_url is malformed or off the allow-list (0-1)",
    )
    parser.add_argument(
        "--insufficient-balance", action="store_true", help="answer every submission 402 Insufficient Balance"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for reproducible faults")


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    return FaultConfig(
        processing_delay=args.delay,
        queued_delay=args.queued_delay,
        rate_429=args.rate_429,
        retry_after_seconds=args.retry_after,
        rate_5xx=args.rate_5xx,
        rate_failed=args.rate_failed,
        rate_error=args.rate_error,
        rate_stuck=args.rate_stuck,
        rate_drop_callback=args.drop_callbacks,
        rate_duplicate_callback=args.duplicate_callbacks,
        rate_late_callback=args.late_callbacks,
        late_callback_delay=args.late_callback_delay,
        insufficient_balance=args.insufficient_balance,
        seed=args.seed,
        rate_malformed_media_url=args.rate_malformed_media_url,
    )


def run_gateway(args: argparse.Namespace) -> int:
    """Serve the emulator until Ctrl-C; print where it listens. Returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # fetch retries are reported per job
    try:
        faults = faults_from_args(args)
        emulator = GatewayEmulator(
            args.api_key,
            faults,
            host=args.host,
            port=args.port,
            workers=args.workers,
            model_path=args.model_path,
        )
        emulator.start()
    except (ValueError, OSError) as exc:
        print(f"gateway emulator: {exc}")
        return 2
    print(f"Gateway emulator (Bria RMBG 2.0 on Pixazo) at {emulator.base_url}", flush=True)
    print(f"  model path:  {emulator.model_path}")
    print(f"  submit:      POST {emulator.submit_url}  ({KEY_HEADER}: {args.api_key})")
    print(f"  status:      GET  {emulator.base_url}{STATUS_PATH}{{request_id}}")
    print(f"  stats:       GET  {emulator.base_url}{STATS_PATH}")
    print("Ctrl-C to stop.", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)  # stop as cleanly on `kill` as on Ctrl-C
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        stats = emulator.stats()
        print(
            f"\nstopped: {stats['accepted']} accepted, {stats['completed']} completed, "
            f"{stats['failed']} failed, {stats['errors']} errors, {stats['callbacks_sent']} call-backs sent"
        )
    return 0
