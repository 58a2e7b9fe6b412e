"""moto's server with fidelity fixes, for the guarantees our code rests on.

1. DynamoDB writes are atomic, as they are in DynamoDB. moto checks a ConditionExpression and
   then writes, with nothing between the two to stop a concurrent request on another server
   thread. Our "never paid twice" claim rests on that guarantee, so the stand-in must give it too.
2. S3 event records carry ``versionId`` and ``sequencer``, as S3's do. moto leaves both out, which
   would send the local stack down a path production never takes (jobs keyed on the ETag, no
   ordering of overwrites). Each object version gets an increasing sequencer when it is stored,
   under one lock with the store itself, so the sequencers order versions as the bucket does.

3. S3's limits, which moto does not enforce: a key longer than 1,024 bytes of UTF-8 is refused
   with 400 ``KeyTooLongError``, user metadata over 2 KB with 400 ``MetadataTooLarge``, and a
   CopyObject whose ``CopySourceIfMatch`` names another ETag with 412 ``PreconditionFailed``
   (moto copies whatever the ETag). Code that must keep within them is only tested if the
   stand-in refuses what S3 refuses.

Transient faults (:class:`AwsFaults`), off unless asked for: the functions talk to their own
port (``--functions-port``), where a seeded share of S3 and DynamoDB calls is answered with a
throttle or a 5xx, as AWS answers under load. The test harness keeps the main port, so its
uploads and final inspection never see a fault.

And repairs of cost, not behaviour, found by profiling the server under ``make bench``:
- ReceiveMessage checked each message's retention by building every queue attribute, which
  counts every message in the queue: receiving was quadratic in the queue's depth (a 500-image
  upload spent most of moto's CPU there). It reads the queue's retention period directly now.
- Every request listed moto's package directory (``os.listdir`` of ~150 folders) to find its
  backend; the list is read once.
- werkzeug wrote an access-log line per request; it is off (``CUTOUTS_MOTO_ACCESS_LOG=1`` for it).

``python -m local.moto_server -H 127.0.0.1 -p PORT [--functions-port PORT2 --fault-rate 0.04
--fault-reach 0.5 --fault-seed 7]`` runs it; ``GET /_cutouts/aws-faults`` on either port counts
the faults injected; a POST there of an :class:`AwsFaultConfig` as JSON changes them.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import random
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_WRITE_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def make_dynamodb_writes_atomic() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        original = getattr(DynamoDBBackend, name, None)
        if original is None or getattr(original, "_cutouts_atomic", False):
            continue

        def locked(*args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with _WRITE_LOCK:
                return __original(*args, **kwargs)

        functools.update_wrapper(locked, original)
        locked._cutouts_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


_S3_LOCK = threading.RLock()
_SEQUENCER = iter(range(1, 1 << 62))


def make_s3_events_faithful() -> None:
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    put_object = S3Backend.put_object
    if getattr(put_object, "_cutouts_ordered", False):
        return

    def ordered_put_object(*args: Any, **kwargs: Any) -> Any:
        with _S3_LOCK:  # storing the version and numbering its event happen as one step
            return put_object(*args, **kwargs)

    functools.update_wrapper(ordered_put_object, put_object)
    ordered_put_object._cutouts_ordered = True  # type: ignore[attr-defined]
    S3Backend.put_object = ordered_put_object  # type: ignore[method-assign]

    get_s3_event = notifications._get_s3_event

    def s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = get_s3_event(event_name, bucket, key, notification_id)
        with _S3_LOCK:
            if getattr(key, "_cutouts_sequencer", None) is None:
                key._cutouts_sequencer = f"{next(_SEQUENCER):016X}"  # one per version, like S3's
        obj = event["Records"][0]["s3"]["object"]
        if getattr(key, "version_id", "null") not in (None, "null"):
            obj["versionId"] = key.version_id
        obj["sequencer"] = key._cutouts_sequencer
        return event

    notifications._get_s3_event = s3_event


def make_sqs_receive_linear() -> None:
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend.is_message_valid_based_on_retention_period, "_cutouts_linear", False):
        return

    def within_retention(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    within_retention._cutouts_linear = True  # type: ignore[attr-defined]
    SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign]


def make_backend_lookup_cached() -> None:
    from moto import backends

    if getattr(backends.list_of_moto_modules, "_cutouts_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())  # the installed package does not change

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules._cutouts_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]


# --- S3's limits ------------------------------------------------------------------------

MAX_KEY_BYTES = 1024
MAX_USER_METADATA_BYTES = 2048
_META_PREFIX = "x-amz-meta-"
_SUBRESOURCES = ("retention", "legal-hold", "acl", "tagging")


def _header_bytes(text: str) -> int:
    try:
        return len(text.encode("latin-1"))  # what came over the wire (WSGI decodes it as latin-1)
    except UnicodeEncodeError:
        return len(text.encode("utf-8"))


def user_metadata_bytes(headers: Iterable[tuple[str, str]]) -> int:
    """S3's measure: the UTF-8 bytes of every user metadata name (after ``x-amz-meta-``) and value."""
    return sum(
        _header_bytes(name[len(_META_PREFIX) :]) + _header_bytes(value)
        for name, value in headers
        if name.lower().startswith(_META_PREFIX)
    )


def make_s3_limits_enforced() -> None:
    from moto.s3.exceptions import PreconditionFailed, S3ClientError
    from moto.s3.responses import S3Response

    if getattr(S3Response._key_response_put, "_cutouts_limits", False):
        return

    class KeyTooLongError(S3ClientError):
        code = "KeyTooLongError"

        def __init__(self, size: int) -> None:
            super().__init__("KeyTooLongError", "Your key is too long")
            self.size, self.max_size_allowed = size, MAX_KEY_BYTES

    class MetadataTooLarge(S3ClientError):
        code = "MetadataTooLarge"

        def __init__(self, size: int) -> None:
            super().__init__("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.")
            self.size, self.max_size_allowed = size, MAX_USER_METADATA_BYTES

    def check_key(key_name: str) -> None:
        size = len(key_name.encode("utf-8"))
        if size > MAX_KEY_BYTES:
            raise KeyTooLongError(size)

    def check_metadata(response: Any) -> None:
        size = user_metadata_bytes(response.headers.items())
        if size > MAX_USER_METADATA_BYTES:
            raise MetadataTooLarge(size)

    def check_copy_source_if_match(response: Any) -> None:
        wanted = response.headers.get("x-amz-copy-source-if-match")
        if wanted is None:
            return
        source = urlsplit(response.headers["x-amz-copy-source"])
        bucket, _, key = unquote(source.path).lstrip("/").partition("/")
        version_id = parse_qs(source.query).get("versionId", [None])[0]
        current = response.backend.get_object(bucket, key, version_id=version_id)
        if current is None:
            return  # moto answers the missing source itself
        etags = {tag.strip().strip('"') for tag in wanted.split(",")}
        if "*" not in etags and current.etag.strip('"') not in etags:
            raise PreconditionFailed("x-amz-copy-source-If-Match")

    put = S3Response._key_response_put
    post = S3Response._key_response_post

    def key_response_put(self: Any, query: dict[str, Any], key_name: str) -> Any:
        check_key(key_name)
        if any(name in query for name in _SUBRESOURCES) or "partNumber" in query:
            return put(self, query, key_name)
        copying = "x-amz-copy-source" in self.headers
        if not copying or (self.headers.get("x-amz-metadata-directive") or "COPY").upper() == "REPLACE":
            check_metadata(self)
        if not copying:
            return put(self, query, key_name)
        with _S3_LOCK:  # the ETag check and the copy are one step, as in S3
            check_copy_source_if_match(self)
            return put(self, query, key_name)

    def key_response_post(self: Any, request: Any, body: bytes, bucket: str, query: dict[str, Any], key: str) -> Any:
        if "uploads" in query:
            check_key(key)
            check_metadata(self)
        return post(self, request, body, bucket, query, key)

    patches: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
        ("_key_response_put", key_response_put, put),
        ("_key_response_post", key_response_post, post),
    ]
    for name, patched, original in patches:
        functools.update_wrapper(patched, original)
        patched._cutouts_limits = True  # type: ignore[attr-defined]
        setattr(S3Response, name, patched)


# --- transient faults -----------------------------------------------------------------

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


# --- the server -----------------------------------------------------------------------


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.moto_server", description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="the main port (no faults)")
    parser.add_argument("--functions-port", type=int, help="a second port, for the functions: faults go there")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of SDK calls given a fault (0-1)")
    parser.add_argument("--fault-reach", type=float, default=0.5, help="share of faulted calls failing every attempt")
    parser.add_argument("--fault-seed", type=int, default=None, help="random seed, for reproducible faults")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    args = _arguments(argv if argv is not None else sys.argv[1:])
    faults = AwsFaults(AwsFaultConfig(args.fault_rate, args.fault_reach, args.fault_seed))
    make_dynamodb_writes_atomic()
    make_s3_events_faithful()
    make_s3_limits_enforced()
    make_sqs_receive_linear()
    make_backend_lookup_cached()
    if os.environ.get("CUTOUTS_MOTO_ACCESS_LOG") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)

    def serve(port: int, inject: bool) -> Any:
        return make_server(
            args.host, port, faults.wrap(app, inject=inject), threaded=True, request_handler=MotoRequestHandler
        )

    main_server = serve(args.port, inject=False)
    if args.functions_port is not None:
        functions_server = serve(args.functions_port, inject=True)
        threading.Thread(target=functions_server.serve_forever, name="functions-port", daemon=True).start()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    main_server.serve_forever()


if __name__ == "__main__":
    main()
