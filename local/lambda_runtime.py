"""How AWS calls our functions, done locally: an SQS event source, an HTTP API, a schedule.

Each piece builds the event shape Lambda would deliver and honours what Lambda honours: the
SQS poller deletes only the records a partial batch response does not name, leaves the rest to
reappear after their visibility time-out (so redelivery and the dead-letter queue work as in
AWS), and the HTTP API hands the webhook a payload-v2 event and returns its answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Handler = Callable[[dict[str, Any], Any], Any]


class _Server(ThreadingHTTPServer):
    """The standard threading server, with a listen backlog for bursts (the default is 5)."""

    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A caller that hung up before its answer (as API Gateway, the function's work stands): no traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass
class LocalContext:
    """The parts of Lambda's context object our handlers and Powertools read."""

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "local"
    log_stream_name: str = "local"
    _start: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._start)) * 1000))


class ExecutionEnvironments:
    """Warm Lambda environments of one function: each runs one invocation at a time.

    A handler module keeps per-invocation state in module globals (the batch processor, the
    HTTP resolver's current event), which is safe in Lambda because an environment never runs
    two invocations at once. Locally we keep the same promise: ``size`` independent copies of
    the handler module, each lent to one invocation at a time.
    """

    def __init__(self, module_name: str, size: int) -> None:
        import importlib
        import importlib.util
        import queue

        base = importlib.import_module(module_name)
        self.module = base
        self._free: queue.Queue[Any] = queue.Queue()
        self._free.put(base)
        for i in range(1, size):
            spec = importlib.util.spec_from_file_location(f"{module_name}__env{i}", base.__file__)
            assert spec is not None and spec.loader is not None
            copy = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(copy)
            self._free.put(copy)

    def handler(self, event: dict[str, Any], context: Any) -> Any:
        """Invoke like Lambda: in whichever environment is free."""
        return self.invoke(event, context)

    def invoke(self, event: dict[str, Any], context: Any) -> Any:
        module = self._free.get()
        try:
            return module.handler(event, context)
        finally:
            self._free.put(module)


class SqsEventSource:
    """Lambda's SQS event source mapping: long-poll, batch, invoke, delete what succeeded."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        concurrency: int = 2,
        function_name: str = "submit",
    ) -> None:
        self._sqs, self._queue_url, self._queue_arn = sqs, queue_url, queue_arn
        self._handler, self._batch_size, self._function_name = handler, batch_size, function_name
        self._stop = threading.Event()
        self._enabled = threading.Event()
        self._enabled.set()
        self._threads = [
            threading.Thread(target=self._loop, daemon=True, name=f"sqs-poller-{i}") for i in range(concurrency)
        ]
        self.invocations = 0
        self.errors = 0  # invocations that raised: the whole batch comes back
        self.error_types: Counter[str] = Counter()  # what they raised, by exception class
        self.receive_errors = 0  # ReceiveMessage calls that failed (what they took comes back later)
        self.redelivered = 0  # messages received more than once
        self.item_failures = 0  # records a partial batch response handed back

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def disable(self) -> None:
        """As setting the mapping's ``Enabled`` to false: no more receives (a long poll under way ends within 1 s)."""
        self._enabled.clear()

    def enable(self) -> None:
        self._enabled.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._enabled.wait(0.2):
                continue
            try:
                reply = self._sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=self._batch_size,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:  # the local AWS is shutting down, or did not answer in time
                if self._stop.wait(0.2):
                    return
                self.receive_errors += 1
                continue
            messages = reply.get("Messages", [])
            self.redelivered += sum(
                1 for m in messages if int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")) > 1
            )
            if messages:
                self._invoke(messages)

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(m) for m in messages]}
        self.invocations += 1
        try:
            response = self._handler(event, LocalContext(self._function_name))
        except Exception as exc:
            # Lambda counts a raised error as the whole batch failing: nothing is deleted.
            self.errors += 1
            # Powertools raises BatchProcessingError when every record failed: count the records' errors.
            children = [info[1] for info in getattr(exc, "child_exceptions", None) or [] if info and info[1]]
            self.error_types.update(exception_name(child) for child in children or [exc])
            return
        failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        self.item_failures += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = message.get("Attributes", {})
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
                "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                "ApproximateFirstReceiveTimestamp": attributes.get(
                    "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
                ),
            },
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", hashlib.md5(message["Body"].encode()).hexdigest()),  # noqa: S324
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": "us-east-1",
        }


class HttpApi:
    """An API Gateway HTTP API with one route, ``POST /callback/{job_id}``, on 127.0.0.1."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        api = self

        class _Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = api.dispatch(
                    "POST", self.path, dict(self.headers), body, self.client_address[0]
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._handler = handler
        self._server = _Server((host, port), _Request)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="http-api")
        self.requests = 0
        self.errors = 0  # invocations that raised: API Gateway answers 500
        self.error_types: Counter[str] = Counter()  # what they raised, by exception class

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def dispatch(
        self, method: str, raw: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests += 1
        url = urlsplit(raw)
        parts = url.path.strip("/").split("/")
        if method != "POST" or len(parts) != 2 or parts[0] != "callback" or not parts[1]:
            return 404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}'
        event = http_api_event(url.path, url.query, headers, body, source_ip, {"job_id": parts[1]})
        try:
            result = self._handler(event, LocalContext("webhook", timeout_seconds=29))
        except Exception as exc:
            self.errors += 1
            self.error_types[exception_name(exc)] += 1
            return 500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}'
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode()
        return int(result.get("statusCode", 200)), dict(result.get("headers") or {}), data


def http_api_event(
    path: str, query: str, headers: dict[str, str], body: bytes, source_ip: str, path_parameters: dict[str, str]
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event, as the AWS documentation shows it."""
    now = datetime.now(UTC)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    lowered = {k.lower(): v for k, v in headers.items()}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "POST /callback/{job_id}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "POST /callback/{job_id}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "pathParameters": path_parameters,
        "body": text,
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    return event


class Schedule:
    """An EventBridge rule: invoke the handler with a scheduled event every ``every`` seconds."""

    def __init__(self, handler: Handler, every: float, function_name: str = "reconcile") -> None:
        self._handler, self._every, self._name = handler, every, function_name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="schedule")
        self.invocations = 0
        self.errors = 0  # invocations that raised
        self.error_types: Counter[str] = Counter()  # what they raised, by exception class

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self.invocations += 1
            try:
                self._handler(scheduled_event(), LocalContext(self._name, timeout_seconds=120))
            except Exception as exc:  # a failed run is retried by the next tick, as with EventBridge
                self.errors += 1
                self.error_types[exception_name(exc)] += 1
                logging.getLogger(__name__).exception("scheduled invocation failed")


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/cutouts-local-reconcile"],
        "detail": {},
    }


def exception_name(exc: BaseException) -> str:
    """``module.Class`` of an exception, and of the botocore error behind it if there is one.

    A name with ``botocore.`` in it says an AWS call failed (our code may wrap it in a typed
    exception); any other says our own code did.
    """
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    cause, seen = exc.__cause__ or exc.__context__, 0
    while cause is not None and seen < 10:
        if type(cause).__module__.startswith("botocore"):
            return f"{name} (from {type(cause).__module__}.{type(cause).__qualname__})"
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return name


def dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))
