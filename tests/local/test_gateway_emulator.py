"""The gateway emulator against the reference API, over real HTTP on loopback."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
import urllib3
from PIL import Image

from local.gateway_emulator import (
    DEFAULT_MODEL_PATH,
    MALFORMED_MEDIA_URLS,
    FaultConfig,
    GatewayEmulator,
    add_gateway_arguments,
    faults_from_args,
    source_of,
)

KEY = "test-key"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8"))
IMAGES = SAMPLES / MANIFEST["images_dir"]
STATUS_DOCUMENT_KEYS = {
    "request_id",
    "status",
    "model_id",
    "error",
    "output",
    "created_at",
    "updated_at",
    "completed_at",
}
http = urllib3.PoolManager(retries=False)


class Origin:
    """A tiny local server: serves sample images (as S3 would) and receives call-backs."""

    def __init__(self) -> None:
        self.callbacks: list[dict[str, Any]] = []
        self.callback_times: list[float] = []
        self.callback_statuses: list[int] = []  # answers to give, in order; then 204
        self.callback_attempts = 0
        self._arrived = threading.Condition()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                file = IMAGES / path.removeprefix("/bucket/")
                if path.startswith("/bucket/") and file.is_file():
                    data = file.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif path == "/garbage":
                    self.send_response(200)
                    self.send_header("Content-Length", "9")
                    self.end_headers()
                    self.wfile.write(b"not a png")
                else:
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with origin._arrived:
                    origin.callback_attempts += 1
                    status = origin.callback_statuses.pop(0) if origin.callback_statuses else 204
                    if status < 300:
                        origin.callbacks.append(json.loads(body))
                        origin.callback_times.append(time.monotonic())
                    origin._arrived.notify_all()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", origin.base + "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def image_url(self, name: str, version: str = "v1", signature: str = "sig") -> str:
        return f"{self.base}/bucket/{quote(name)}?versionId={version}&X-Amz-Signature={signature}&X-Amz-Expires=3600"

    @property
    def callback_url(self) -> str:
        return f"{self.base}/callback/job-1?token=t"

    def wait_for_callbacks(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.callbacks) >= count, timeout)
            return list(self.callbacks)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., GatewayEmulator]]:
    started: list[GatewayEmulator] = []

    def make(**faults: Any) -> GatewayEmulator:
        faults.setdefault("processing_delay", 0.05)
        emulator = GatewayEmulator(KEY, FaultConfig(**faults), workers=2).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


def submit(
    gateway: GatewayEmulator,
    body: Any,
    key: str | None = KEY,
    webhook: str | None = None,
    path: str | None = None,
) -> urllib3.BaseHTTPResponse:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-cache"}
    if key is not None:
        headers["Ocp-Apim-Subscription-Key"] = key
    if webhook is not None:
        headers["X-Webhook-URL"] = webhook
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.request("POST", gateway.base_url + (path or gateway.model_path), body=payload, headers=headers)


def poll(gateway: GatewayEmulator, request_id: str, key: str | None = KEY) -> urllib3.BaseHTTPResponse:
    headers = {"Ocp-Apim-Subscription-Key": key} if key else {}
    return http.request("GET", f"{gateway.base_url}/v2/requests/status/{request_id}", headers=headers)


def wait_for_status(
    gateway: GatewayEmulator, request_id: str, wanted: set[str], timeout: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        document = poll(gateway, request_id).json()
        if document["status"] in wanted or time.monotonic() > deadline:
            return document
        time.sleep(0.02)


def wait_for_callback_log(gateway: GatewayEmulator, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
    """The emulator's record of its last delivery (written just after the receiver answers)."""
    deadline = time.monotonic() + timeout
    while len(gateway.callbacks_log) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return gateway.callbacks_log[-1]


# ------------------------------------------------------------------------- submit


def test_accepted_submit_answers_202_with_request_id_status_and_polling_url(make_gateway, origin) -> None:
    # Given a gateway
    gateway = make_gateway()

    # When an image is submitted with the key
    response = submit(gateway, {"image_url": origin.image_url("red apple.jpg")})

    # Then it is queued, with the reference's three fields
    assert response.status == 202
    body = response.json()
    assert set(body) == {"request_id", "status", "polling_url"}
    assert body["status"] == "QUEUED"
    assert body["request_id"].startswith("bria-rmbg-2-0-682_")
    assert body["polling_url"] == f"{gateway.base_url}/v2/requests/status/{body['request_id']}"
    assert gateway.model_path == DEFAULT_MODEL_PATH


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
def test_submit_without_the_right_key_is_401_and_not_accepted(make_gateway, origin, key) -> None:
    gateway = make_gateway()

    response = submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, key=key)

    assert response.status == 401
    assert response.json()["error"] == "Unauthorized"
    assert gateway.stats()["accepted"] == 0
    assert gateway.stats()["rejected"] == {"401": 1}


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b"[]", {"image": "x"}, {"image_url": ""}, {"image_url": 42}, {"image_url": "ftp://x/y"}],
)
def test_submit_without_a_valid_image_url_is_400_with_json_error(make_gateway, body) -> None:
    gateway = make_gateway()

    response = submit(gateway, body)

    assert response.status == 400
    assert response.json()["error"] == "Bad Request"
    assert response.json()["message"]


def test_submit_to_another_model_is_400_model_not_found(make_gateway, origin) -> None:
    gateway = make_gateway()

    response = submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, path="/no-such-model/v1/run")

    assert response.status == 400
    assert response.json() == {
        "error": "Model not found",
        "message": "Model 'no-such-model' not found or is disabled",
    }


def test_unknown_paths_are_404(make_gateway) -> None:
    gateway = make_gateway()

    assert http.request("POST", gateway.base_url + "/nothing/here", body=b"{}").status == 404
    assert http.request("GET", gateway.base_url + "/nothing").status == 404
    assert http.request("GET", gateway.base_url + "/nothing").json()["error"] == "Not Found"


def test_empty_wallet_is_402_with_the_reference_body(make_gateway, origin) -> None:
    gateway = make_gateway(insufficient_balance=True)

    response = submit(gateway, {"image_url": origin.image_url("red apple.jpg")})

    assert response.status == 402
    assert response.json() == {
        "error": "Insufficient Balance",
        "message": "Your wallet does not have enough balance.",
    }
    assert gateway.stats()["charged"] == 0


def test_rate_limited_submit_is_429_with_retry_after(make_gateway, origin) -> None:
    gateway = make_gateway(rate_429=1.0, retry_after_seconds=7)

    response = submit(gateway, {"image_url": origin.image_url("red apple.jpg")})

    assert response.status == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"] == "Too Many Requests"
    assert gateway.stats()["rejected"] == {"429": 1}
    assert gateway.stats()["accepted"] == 0


def test_server_errors_are_500_502_or_503_and_create_no_job(make_gateway, origin) -> None:
    gateway = make_gateway(rate_5xx=1.0, seed=3)

    statuses = {submit(gateway, {"image_url": origin.image_url("red apple.jpg")}).status for _ in range(12)}

    assert statuses <= {500, 502, 503} and len(statuses) > 1
    assert gateway.stats()["accepted"] == 0
    assert gateway.stats()["requests_total"] == 12


def test_partial_fault_rates_reject_some_and_accept_others_reproducibly(make_gateway, origin) -> None:
    # Given two gateways with the same seed and a 50 % rate of 429
    outcomes = []
    for _ in range(2):
        gateway = make_gateway(rate_429=0.5, seed=42)
        outcomes.append([submit(gateway, {"image_url": origin.image_url("red apple.jpg")}).status for _ in range(10)])

    # Then both see the same mix of 202 and 429
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {202, 429}


# ------------------------------------------------------------------------- status and media


def test_job_goes_queued_then_processing_then_completed(make_gateway, origin) -> None:
    # Given a gateway whose jobs wait a little in each state
    gateway = make_gateway(queued_delay=0.25, processing_delay=0.25)
    request_id = submit(gateway, {"image_url": origin.image_url("red apple.jpg")}).json()["request_id"]

    # When the status endpoint is polled until the end
    seen: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        document = poll(gateway, request_id).json()
        if not seen or seen[-1] != document["status"]:
            seen.append(document["status"])
        if document["status"] == "COMPLETED":
            break
        assert document["output"] is None and document["completed_at"] is None
        time.sleep(0.02)

    # Then it went through the reference's flow and ends with the reference's document
    assert seen == ["QUEUED", "PROCESSING", "COMPLETED"]
    assert set(document) == STATUS_DOCUMENT_KEYS
    assert document["request_id"] == request_id
    assert document["model_id"] == "bria-rmbg-2-0-682"
    assert document["error"] is None
    assert document["output"] == {
        "media_url": [f"{gateway.base_url}/media/{request_id}/output.png"],
        "media_type": "application/octet-stream",
    }
    assert document["completed_at"] == document["updated_at"]
    for stamp in ("created_at", "updated_at", "completed_at"):
        assert len(document[stamp]) == 24 and document[stamp].endswith("Z")
    assert document["created_at"] < document["completed_at"]


def test_status_needs_the_key_and_unknown_ids_are_404(make_gateway, origin) -> None:
    gateway = make_gateway()
    request_id = submit(gateway, {"image_url": origin.image_url("red apple.jpg")}).json()["request_id"]

    assert poll(gateway, request_id, key=None).status == 401
    assert poll(gateway, request_id, key="wrong").status == 401
    assert poll(gateway, "bria-rmbg-2-0-682_nope").status == 404
    assert poll(gateway, "bria-rmbg-2-0-682_nope").json()["error"] == "Not Found"
    assert poll(gateway, request_id).status == 200


def test_media_is_the_cutout_png_of_the_submitted_image(make_gateway, origin) -> None:
    # Given a completed job for the beach ball
    gateway = make_gateway()
    name = "beach ball.png"
    request_id = submit(gateway, {"image_url": origin.image_url(name)}).json()["request_id"]
    document = wait_for_status(gateway, request_id, {"COMPLETED"})

    # When its media URL is downloaded without a key
    response = http.request("GET", document["output"]["media_url"][0])

    # Then it is an RGBA PNG cutout of that image
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    cutout = Image.open(io.BytesIO(response.data))
    entry = MANIFEST["images"][name]
    assert cutout.format == "PNG" and cutout.mode == "RGBA"
    assert cutout.size == (entry["width"], entry["height"])
    assert cutout.getchannel("A").getpixel(tuple(entry["subject"])) == 255
    assert cutout.getchannel("A").getpixel(tuple(entry["background"])) == 0
    assert http.request("GET", f"{gateway.base_url}/media/{request_id}x/output.png").status == 404


def test_unreachable_image_fails_and_is_charged(make_gateway, origin) -> None:
    gateway = make_gateway()
    request_id = submit(gateway, {"image_url": origin.base + "/bucket/missing.jpg"}).json()["request_id"]

    document = wait_for_status(gateway, request_id, {"FAILED", "COMPLETED"})

    assert document["status"] == "FAILED"
    assert "HTTP 403" in document["error"]
    assert document["output"] is None
    assert gateway.stats()["charged_by_source"] == {"/bucket/missing.jpg": 1}


def test_bytes_that_are_not_an_image_fail(make_gateway, origin) -> None:
    gateway = make_gateway()
    request_id = submit(gateway, {"image_url": origin.base + "/garbage"}).json()["request_id"]

    document = wait_for_status(gateway, request_id, {"FAILED", "COMPLETED"})

    assert document["status"] == "FAILED"
    assert "not a valid image" in document["error"]


def test_stuck_job_stays_processing(make_gateway, origin) -> None:
    gateway = make_gateway(rate_stuck=1.0)
    request_id = submit(gateway, {"image_url": origin.image_url("red apple.jpg")}).json()["request_id"]

    wait_for_status(gateway, request_id, {"PROCESSING"})
    time.sleep(0.3)

    assert poll(gateway, request_id).json()["status"] == "PROCESSING"
    assert gateway.stats()["stuck"] == 1


# ------------------------------------------------------------------------- call-backs


def test_webhook_receives_the_status_document(make_gateway, origin) -> None:
    # Given a submission with a call-back URL
    gateway = make_gateway()
    response = submit(gateway, {"image_url": origin.image_url("green cactus.png")}, webhook=origin.callback_url)
    request_id = response.json()["request_id"]

    # When the job ends
    callbacks = origin.wait_for_callbacks(1)

    # Then the call-back body is the status document, exactly
    assert len(callbacks) == 1
    assert callbacks[0] == poll(gateway, request_id).json()
    assert set(callbacks[0]) == STATUS_DOCUMENT_KEYS
    assert callbacks[0]["status"] == "COMPLETED"
    assert wait_for_callback_log(gateway)["status"] == 204
    assert gateway.stats()["callbacks_sent"] == 1


def test_error_job_calls_back_with_the_error_document(make_gateway, origin) -> None:
    gateway = make_gateway(rate_error=1.0)
    submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, webhook=origin.callback_url)

    callbacks = origin.wait_for_callbacks(1)

    assert callbacks[0]["status"] == "ERROR"
    assert callbacks[0]["output"] is None
    assert callbacks[0]["error"]
    assert callbacks[0]["model_id"] == "bria-rmbg-2-0-682"


def test_duplicated_callback_is_sent_twice(make_gateway, origin) -> None:
    gateway = make_gateway(rate_duplicate_callback=1.0)
    submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, webhook=origin.callback_url)

    callbacks = origin.wait_for_callbacks(2)

    assert len(callbacks) == 2 and callbacks[0] == callbacks[1]
    wait_for_callback_log(gateway, count=2)
    assert gateway.stats()["callbacks_duplicated"] == 1
    assert gateway.stats()["callbacks_sent"] == 2


def test_dropped_callback_is_never_sent_but_the_job_completes(make_gateway, origin) -> None:
    gateway = make_gateway(rate_drop_callback=1.0)
    response = submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, webhook=origin.callback_url)

    document = wait_for_status(gateway, response.json()["request_id"], {"COMPLETED"})
    time.sleep(0.2)

    assert document["status"] == "COMPLETED"
    assert origin.callbacks == []
    assert gateway.stats()["callbacks_dropped"] == 1


def test_late_callback_arrives_after_the_extra_delay(make_gateway, origin) -> None:
    gateway = make_gateway(rate_late_callback=1.0, late_callback_delay=0.5)
    response = submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, webhook=origin.callback_url)
    wait_for_status(gateway, response.json()["request_id"], {"COMPLETED"})
    completed = time.monotonic()

    callbacks = origin.wait_for_callbacks(1)

    assert len(callbacks) == 1
    assert origin.callback_times[0] - completed >= 0.4
    assert gateway.stats()["callbacks_late"] == 1


def test_callback_is_retried_after_a_5xx(make_gateway, origin) -> None:
    # Given a receiver that fails once
    origin.callback_statuses = [503]
    gateway = make_gateway()

    # When a job ends with a call-back
    submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, webhook=origin.callback_url)
    callbacks = origin.wait_for_callbacks(1)

    # Then the second attempt delivers it
    assert len(callbacks) == 1
    assert origin.callback_attempts == 2
    assert wait_for_callback_log(gateway)["attempts"] == 2


def test_callback_redirect_is_not_followed(make_gateway, origin) -> None:
    # Given a receiver that answers with a redirect
    origin.callback_statuses = [307]
    gateway = make_gateway()

    # When a job ends with a call-back
    submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, webhook=origin.callback_url)
    delivery = wait_for_callback_log(gateway)

    # Then the redirect is a failed delivery, neither followed nor retried
    assert delivery["status"] == 307
    assert origin.callback_attempts == 1
    assert gateway.stats()["callbacks_failed"] == 1


# ------------------------------------------------------------------------- accounting


def test_completed_is_charged_per_source_and_error_is_not(make_gateway, origin) -> None:
    # Given one gateway that completes and one that ends every job in ERROR
    completing, erring = make_gateway(), make_gateway(rate_error=1.0)

    # When the same object version is submitted twice with different signatures, to both
    for gateway in (completing, erring):
        for signature in ("a", "b"):
            request_id = submit(gateway, {"image_url": origin.image_url("café mug.png", signature=signature)}).json()[
                "request_id"
            ]
            wait_for_status(gateway, request_id, {"COMPLETED", "FAILED", "ERROR"})

    # Then completions are charged against the source (path and version, no signature)
    source = "/bucket/café mug.png?versionId=v1"
    assert completing.stats()["charged_by_source"] == {source: 2}
    assert completing.stats()["accepted_by_source"] == {source: 2}
    assert completing.stats()["completed"] == 2
    # and ERROR is accepted but not charged
    assert erring.stats()["accepted"] == 2
    assert erring.stats()["errors"] == 2
    assert erring.stats()["charged_by_source"] == {}
    assert all(not job["charged"] for job in erring.stats()["jobs"].values())


def test_failed_is_charged(make_gateway, origin) -> None:
    gateway = make_gateway(rate_failed=1.0)
    request_id = submit(gateway, {"image_url": origin.image_url("red apple.jpg")}).json()["request_id"]

    document = wait_for_status(gateway, request_id, {"FAILED"})

    assert document["status"] == "FAILED" and document["error"]
    assert gateway.stats()["charged_by_source"] == {"/bucket/red apple.jpg?versionId=v1": 1}
    assert gateway.stats()["jobs"][request_id]["charged"] is True


def test_charges_are_counted_per_content_hash_of_the_bytes_fetched(make_gateway, origin) -> None:
    # Given one gateway that completes and one that fails (charged) every job
    completing, failing = make_gateway(), make_gateway(rate_failed=1.0)
    digest = hashlib.sha256((IMAGES / "red apple.jpg").read_bytes()).hexdigest()

    # When the same bytes are submitted as two object versions, and an unreachable object once
    for gateway in (completing, failing):
        for version in ("v1", "v2"):
            request_id = submit(gateway, {"image_url": origin.image_url("red apple.jpg", version)}).json()["request_id"]
            wait_for_status(gateway, request_id, {"COMPLETED", "FAILED"})
    missing = submit(completing, {"image_url": f"{origin.base}/bucket/missing.jpg"}).json()["request_id"]
    wait_for_status(completing, missing, {"FAILED"})

    # Then each gateway charged that content twice (two versions), FAILED as much as COMPLETED,
    # and a charge for bytes never fetched is kept apart under its source
    assert completing.stats()["charged_by_content"] == {digest: 2, "unfetched:/bucket/missing.jpg": 1}
    assert failing.stats()["charged_by_content"] == {digest: 2}
    assert {job["content_sha256"] for job in failing.stats()["jobs"].values()} == {digest}


def test_malformed_media_url_fault_serves_a_bad_url_in_a_charged_completion(make_gateway, origin) -> None:
    # Given a gateway whose every COMPLETED answer carries a malformed media_url (off by default)
    assert FaultConfig().rate_malformed_media_url == 0
    gateway = make_gateway(rate_malformed_media_url=1.0, seed=4)
    netloc = urlsplit(gateway.base_url).netloc

    # When jobs complete
    documents = []
    for version in ("v1", "v2", "v3"):
        request_id = submit(gateway, {"image_url": origin.image_url("red apple.jpg", version)}).json()["request_id"]
        documents.append(wait_for_status(gateway, request_id, {"COMPLETED", "FAILED"}))

    # Then the status answers it: one of the malformed forms, where the real media would be
    for document in documents:
        assert document["status"] == "COMPLETED"
        (url,) = document["output"]["media_url"]
        forms = {form.format(rid=document["request_id"], netloc=netloc) for form in MALFORMED_MEDIA_URLS}
        assert url in forms, url
    stats = gateway.stats()
    assert stats["malformed_media_urls"] == 3 and stats["charged"] == 3
    assert all(job["malformed_media_url"] for job in stats["jobs"].values())


def test_stats_endpoint_serves_the_same_counters(make_gateway, origin) -> None:
    gateway = make_gateway()
    submit(gateway, {"image_url": origin.image_url("red apple.jpg")}, key="wrong")

    response = http.request("GET", gateway.base_url + "/_emulator/stats")

    assert response.status == 200
    assert response.json() == gateway.stats()
    assert response.json()["rejected"] == {"401": 1}
    assert response.json()["requests_total"] == 1


def test_source_ignores_signature_but_keeps_version() -> None:
    assert source_of("http://h/b/a%20b.jpg?X-Amz-Signature=1&versionId=v9") == "/b/a b.jpg?versionId=v9"
    assert source_of("https://b.s3.amazonaws.com/k.png?X-Amz-Signature=1") == "/k.png"


# ------------------------------------------------------------------------- lifecycle and CLI


def test_stop_is_clean_and_frees_the_port() -> None:
    gateway = GatewayEmulator(KEY, FaultConfig()).start()
    url = gateway.base_url

    gateway.stop()

    with pytest.raises(urllib3.exceptions.HTTPError):
        http.request("GET", url + "/_emulator/stats", timeout=1)
    gateway.stop()  # idempotent


def test_cli_arguments_build_the_fault_config() -> None:
    parser = argparse.ArgumentParser()
    add_gateway_arguments(parser)

    args = parser.parse_args(
        [
            *("--port", "0", "--delay", "0.5", "--rate-429", "0.1", "--rate-5xx", "0.2"),
            *("--rate-failed", "0.1", "--rate-error", "0.1", "--rate-stuck", "0.05"),
            *("--drop-callbacks", "0.3", "--duplicate-callbacks", "0.2", "--late-callbacks", "0.1"),
            *("--rate-malformed-media-url", "0.05", "--insufficient-balance", "--seed", "7"),
        ]
    )
    faults = faults_from_args(args)

    assert args.host == "127.0.0.1" and args.api_key == "local-test-key" and args.port == 0
    assert faults.processing_delay == 0.5 and faults.rate_429 == 0.1 and faults.rate_5xx == 0.2
    assert faults.rate_stuck == 0.05 and faults.rate_drop_callback == 0.3
    assert faults.rate_duplicate_callback == 0.2 and faults.rate_late_callback == 0.1
    assert faults.insufficient_balance is True and faults.seed == 7
    assert faults.rate_malformed_media_url == 0.05
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate-429", "1.5"])


def test_impossible_fault_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_failed"):
        FaultConfig(rate_failed=0.7, rate_error=0.5)
