"""Test doubles that speak real HTTP, and builders for the events the functions receive.

FakeGateway answers like the reference API (POST .../bria-rmbg-2-0-request, GET /v2/requests/status/{id})
and also serves media files, so the code under test goes through real sockets and urllib3.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import urllib3
from events_kit import load_event
from PIL import Image

# Names and (fake) secrets of the test environment; import them from here, not from conftest.
BUCKET = "cutouts-test-bucket"
TABLE = "cutouts-jobs"
QUEUE = "cutouts-uploads"
DLQ = "cutouts-uploads-dlq"
GATEWAY_KEY_SECRET = "cutouts/gateway-key"
SIGNING_SECRET = "cutouts/callback-signing"
API_KEY = "pxz-test-KEY-7f3a9c1e5b2d4f6a8c0e"
SIGNING_KEY = "sig-CURRENT-0123456789abcdef0123456789abcdef"
CALLBACK_BASE = "https://abcdef1234.execute-api.us-east-1.amazonaws.com"
MODEL_PATH = "/bria-rmbg-2-0-682/v1/bria-rmbg-2-0-request"
STATUS_PATH = "/v2/requests/status/"


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    send_length: bool = True

    def payload(self) -> bytes:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode()
        if isinstance(self.body, str):
            return self.body.encode()
        return self.body


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def new_request_id() -> str:
    return f"bria-rmbg-2-0-682_{uuid.uuid4()}"


def status_doc(
    request_id: str, status: str, media_urls: list[str] | None = None, error: str | None = None
) -> dict[str, Any]:
    done = status in ("COMPLETED", "FAILED", "ERROR")
    return {
        "request_id": request_id,
        "status": status,
        "model_id": "bria-rmbg-2-0-682",
        "error": error,
        "output": {"media_url": media_urls, "media_type": "application/octet-stream"} if media_urls else None,
        "created_at": "2026-03-31T10:00:00.000Z",
        "updated_at": "2026-03-31T10:00:15.000Z",
        "completed_at": "2026-03-31T10:00:15.000Z" if done else None,
    }


class FakeGateway:
    """A threaded HTTP server; every request is recorded, replies are scripted per test."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
                with owner.lock:
                    owner.requests.append(seen)
                reply = owner.reply_for(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.send_length:
                        self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _serve

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: list[Seen] = []
            self.submit_replies: list[Reply] = []
            self.statuses: dict[str, Reply] = {}
            self.files: dict[str, Reply] = {}
            self.accepted: list[str] = []
            self.fetched_images: list[tuple[int, bytes]] = []
            self.fetch_image_url = False
            self.submit_delay = 0.0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- scripting ----------------------------------------------------------------------------

    def reply_for(self, seen: Seen) -> Reply:
        path = urlsplit(seen.path).path
        if seen.method == "POST" and path == MODEL_PATH:
            if self.fetch_image_url:
                url = json.loads(seen.body)["image_url"]
                got = urllib3.PoolManager().request("GET", url, retries=False)
                with self.lock:
                    self.fetched_images.append((got.status, got.data))
            with self.lock:
                scripted = self.submit_replies.pop(0) if self.submit_replies else None
            if scripted is not None:
                return scripted
            request_id = new_request_id()
            with self.lock:
                self.accepted.append(request_id)
            return Reply(
                202,
                {
                    "request_id": request_id,
                    "status": "QUEUED",
                    "polling_url": f"https://gateway.pixazo.ai{STATUS_PATH}{request_id}",
                },
                delay=self.submit_delay,
            )
        if seen.method == "GET" and path.startswith(STATUS_PATH):
            request_id = path[len(STATUS_PATH) :]
            return self.statuses.get(request_id, Reply(404, {"error": "Not Found", "message": "unknown request"}))
        if path in self.files:
            return self.files[path]
        return Reply(404, b"not found")

    def complete(self, request_id: str, png: bytes, path: str | None = None) -> str:
        """Make the status endpoint report COMPLETED with a media URL this server serves."""
        path = path or f"/v1/{request_id}/output.png"
        self.files[path] = Reply(200, png, {"Content-Type": "application/octet-stream"})
        url = self.base_url + path
        self.statuses[request_id] = Reply(200, status_doc(request_id, "COMPLETED", [url]))
        return url

    def set_status(self, request_id: str, status: str, error: str | None = None) -> None:
        self.statuses[request_id] = Reply(200, status_doc(request_id, status, error=error))

    def posts(self) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and urlsplit(r.path).path == MODEL_PATH]

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


# --- images ---------------------------------------------------------------------------------------


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 30, 40) if mode == "RGB" else (200, 30, 40, 128)).save(buf, fmt)
    return buf.getvalue()


def unique_image(name: str) -> bytes:
    """A JPEG whose bytes differ for every name, so uploads of different keys are not identical."""
    digest = hashlib.sha256(name.encode()).digest()
    return image_bytes("JPEG", (16 + digest[0] % 64, 16 + digest[1] % 64))


def cutout_png(size: tuple[int, int] = (16, 16)) -> bytes:
    return image_bytes("PNG", size, "RGBA")


# --- events ---------------------------------------------------------------------------------------


def s3_notification(
    bucket: str, raw_key: str, *, etag: str | None, size: int, sequencer: str, version_id: str | None = None
) -> dict[str, Any]:
    """The S3 notification document from the canonical event, pointed at one object."""
    doc = json.loads(load_event("sqs_s3_object_created")["Records"][0]["body"])
    record = doc["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    obj = record["s3"]["object"]
    obj.update({"key": raw_key, "size": size, "sequencer": sequencer})
    if etag is None:
        obj.pop("eTag", None)
    else:
        obj["eTag"] = etag.strip('"')
    if version_id:
        obj["versionId"] = version_id
    return doc


def encode_key(key: str) -> str:
    """How S3 writes a key into an event: URL-encoded, space as '+'."""
    return quote(key, safe="/").replace("%20", "+")


def sqs_event(
    sqs: Any, queue_url: str, queue_arn: str, bodies: list[str], receive_count: int | None = None
) -> dict[str, Any]:
    """Put the bodies on the real (moto) queue, receive them, and wrap them like Lambda's SQS event."""
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    messages: list[dict[str, Any]] = []
    while len(messages) < len(bodies):
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            break
        messages += got
    template = load_event("sqs_s3_object_created")["Records"][0]
    by_body = {m["Body"]: m for m in messages}
    records = []
    for body in bodies:
        message = by_body[body]
        record = json.loads(json.dumps(template))
        record.update(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": body,
                "md5OfBody": message["MD5OfBody"],
                "eventSourceARN": queue_arn,
            }
        )
        record["attributes"]["ApproximateReceiveCount"] = str(
            receive_count or message["Attributes"].get("ApproximateReceiveCount", "1")
        )
        records.append(record)
    return {"Records": records}


def callback_event(job_id: str, *, attempt: str | None, token: str | None, body: str | None) -> dict[str, Any]:
    event = load_event("http_api_v2_callback")
    query = {k: v for k, v in (("attempt", attempt), ("token", token)) if v is not None}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/callback/{job_id}"
    event["pathParameters"] = {"job_id": job_id}
    event["queryStringParameters"] = query or None
    if not query:
        event.pop("queryStringParameters")
    event["rawQueryString"] = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    if body is None:
        event.pop("body", None)
    else:
        event["body"] = body
        event["headers"]["content-length"] = str(len(body.encode()))
    return event


# --- a job the gateway accepted ----------------------------------------------------------------


def submitted(cutouts: Any, key: str = "uploads/pets/cat.jpg", now: float | None = None) -> tuple[Any, str, str]:
    """An upload the gateway accepted: (job, attempt, token) as the gateway would call back."""
    from cutouts.notifications import source_from_s3_record
    from cutouts.submission import submit_source

    body = json.loads(cutouts.notification(key, unique_image(key)))
    services = cutouts.services()
    outcome = submit_source(source_from_s3_record(body["Records"][0]), services, time.time() if now is None else now)
    assert outcome.result == "submitted"
    post = cutouts.gateway.posts()[-1]
    query = parse_qs(urlsplit(post.headers["X-Webhook-URL"]).query)
    return services.store.get(outcome.job_id), query["attempt"][0], query["token"][0]
