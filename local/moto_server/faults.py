"""Transient S3 and DynamoDB faults, as AWS answers under load, injected as WSGI middleware.

Only the functions' port injects them; the test harness keeps the main port, so its uploads and
final inspection never see a fault. ``GET /_cutouts/aws-faults`` on either port counts the faults
injected; a POST there of an :class:`AwsFaultConfig` as JSON changes them.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

FAULTS_PATH = "/_cutouts/aws-faults"


@dataclass(frozen=True)
class AwsFaultConfig:
    """Transient S3 and DynamoDB errors on the functions' port; off by default.

    ``rate`` is the share of SDK calls (not attempts) chosen for a fault. botocore retries a
    throttle or a 5xx by itself (standard mode, 3 attempts in the functions), so a fault that
    failed one attempt would never be seen by our code: ``reach`` is the share of the chosen
    calls whose every attempt fails, so the error reaches the code; the others fail only their
    first attempt(s) and botocore absorbs them. Draws come from one RNG seeded with ``seed``.
    """

    rate: float = 0.0
    reach: float = 0.5
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("rate", "reach"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def arguments(self) -> list[str]:
        seed = [] if self.seed is None else ["--fault-seed", str(self.seed)]
        return ["--fault-rate", str(self.rate), "--fault-reach", str(self.reach), *seed]


# What AWS answers when it throttles or fails, by service: (status, code, message).
_S3_FAULTS = {
    "throttle": (503, "SlowDown", "Please reduce your request rate."),
    "server-error": (500, "InternalError", "We encountered an internal error. Please try again."),
}
_DYNAMODB_FAULTS = {
    "throttle": (
        400,
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    "throttle-account": (
        400,
        "com.amazon.coral.availability#ThrottlingException",
        "Rate of requests exceeds the allowed throughput.",
    ),
    "server-error": (500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"),
}
_CREDENTIAL_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_ATTEMPT = re.compile(r"attempt=(\d+)")
_MAX = re.compile(r"max=(\d+)")


def _s3_operation(method: str, path: str, query: str, environ: dict[str, Any]) -> str:
    """A readable name for an S3 request (path-style addressing, as the local clients use)."""
    has_key = "/" in path.strip("/")
    if method == "PUT" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
        return "CopyObject"
    names = {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
    if has_key and method in names:
        return names[method]
    if method == "GET" and "list-type=2" in query:
        return "ListObjectsV2"
    return f"S3 {method}"


class AwsFaults:
    """Fault injection as WSGI middleware: decides per SDK call, counts per operation."""

    def __init__(self, config: AwsFaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self._lock = threading.Lock()
        # invocation id -> (fault kind, last attempt to fail, when it was planned)
        self._plans: dict[str, tuple[str, int, float]] = {}
        self.counts: Counter[str] = Counter()
        self.injected_by_operation: Counter[str] = Counter()
        self.reached_by_operation: Counter[str] = Counter()

    def configure(self, config: AwsFaultConfig) -> None:
        with self._lock:
            self.config = config
            self._random = random.Random(config.seed)
            self._plans.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "config": asdict(self.config),
                "calls_seen": self.counts["calls"],
                "calls_faulted": self.counts["calls_faulted"],
                "injected": self.counts["injected"],
                "reached": self.counts["reached"],
                # planned to fail again, but no further attempt came: botocore stopped early (its
                # retry quota ran out), so the error reached the caller before the last attempt
                "stopped_early": sum(1 for *_, at in self._plans.values() if time.monotonic() - at > 60),
                "injected_by_kind": {k[5:]: v for k, v in self.counts.items() if k.startswith("kind:")},
                "injected_by_operation": dict(self.injected_by_operation),
                "reached_by_operation": dict(self.reached_by_operation),
            }

    def wrap(self, app: Callable[..., Any], *, inject: bool) -> Callable[..., Any]:
        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if environ.get("PATH_INFO") == FAULTS_PATH:
                if environ["REQUEST_METHOD"] == "POST":  # a new configuration, counters kept
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                    self.configure(AwsFaultConfig(**json.loads(environ["wsgi.input"].read(length) or b"{}")))
                return _json_response(start_response, 200, self.stats())
            fault = self._decide(environ) if inject and self.config.enabled else None
            if fault is None:
                return app(environ, start_response)
            _drain(environ)
            return fault(start_response)

        return middleware

    def _decide(self, environ: dict[str, Any]) -> Callable[..., Any] | None:
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        if not invocation:  # not an SDK call: a presigned URL fetched by the gateway, say
            return None
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        method, path, query = environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        if target.startswith("DynamoDB_"):
            service, operation, faults = "dynamodb", target.split(".", 1)[-1], _DYNAMODB_FAULTS
        else:
            match = _CREDENTIAL_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
            if not match or match.group(1) != "s3":
                return None
            service, operation, faults = "s3", _s3_operation(method, path, query, environ), _S3_FAULTS
        retry = environ.get("HTTP_AMZ_SDK_REQUEST", "")
        attempt = int(m.group(1)) if (m := _ATTEMPT.search(retry)) else 1
        max_attempts = int(m.group(1)) if (m := _MAX.search(retry)) else 1
        with self._lock:
            if attempt == 1:
                self.counts["calls"] += 1
                if self._random.random() < self.config.rate:
                    kind = self._random.choice(sorted(faults))
                    reach = max_attempts <= 1 or self._random.random() < self.config.reach
                    last = max_attempts if reach else self._random.randrange(1, max_attempts)
                    self._plans[invocation] = (kind, last, time.monotonic())
                    self.counts["calls_faulted"] += 1
            plan = self._plans.get(invocation)
            if plan is None:
                return None
            kind, last, _ = plan
            if attempt >= last:
                del self._plans[invocation]
            if attempt > last:
                return None
            self.counts["injected"] += 1
            self.counts[f"kind:{service} {faults[kind][1].rsplit('#', 1)[-1]}"] += 1
            self.injected_by_operation[f"{service}:{operation}"] += 1
            if attempt >= max_attempts:  # botocore gives up here: the error reaches our code
                self.counts["reached"] += 1
                self.reached_by_operation[f"{service}:{operation}"] += 1
        status, code, message = faults[kind]
        if service == "dynamodb":
            document = {"__type": code, "message": message}
            return lambda start: _json_response(start, status, document, "application/x-amz-json-1.0")
        head = method == "HEAD"  # S3 sends no body with a HEAD answer
        return lambda start: _s3_error(start, status, code, message, head)


def _drain(environ: dict[str, Any]) -> None:
    """Read the request body we are refusing, so the kept-alive connection stays in step."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    length = environ.get("CONTENT_LENGTH")
    if length:
        stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        stream.read()


def _json_response(
    start_response: Callable[..., Any], status: int, document: Any, content_type: str = "application/json"
) -> list[bytes]:
    body = json.dumps(document).encode()
    reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("x-amzn-RequestId", str(uuid.uuid4()))],
    )
    return [body]


def _s3_error(
    start_response: Callable[..., Any], status: int, code: str, message: str, head: bool = False
) -> list[bytes]:
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        b""
        if head
        else (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
    )
    reason = {500: "Internal Server Error", 503: "Slow Down"}.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body))), ("x-amz-request-id", request_id)],
    )
    return [body]
