"""The Pixazo gateway client over real HTTP against a local server that answers like the reference API."""

import json
import socket

import pytest
import urllib3
from functions_kit import MODEL_PATH, Reply, new_request_id, status_doc

from cutouts.gateway import (
    GatewayInDoubt,
    GatewayPermanentError,
    GatewayTransientError,
)
from cutouts.pixazo import PixazoGateway

KEY = "test-subscription-key-1234"
WEBHOOK = "https://api.example.com/callback/0123456789abcdef0123456789abcdef?attempt=1&token=abc"
IMAGE = "https://bucket.s3.us-east-1.amazonaws.com/uploads/cat.jpg?X-Amz-Signature=deadbeef"


@pytest.fixture
def client(gateway):
    gateway.reset()
    return PixazoGateway(gateway.base_url, MODEL_PATH, lambda: KEY, urllib3.PoolManager(), timeout_seconds=0.5)


def test_accepted_submission_is_parsed(client, gateway):
    # Given a gateway that accepts the request
    # When an image is submitted
    submission = client.submit(IMAGE, WEBHOOK)
    # Then the request id it answered is returned
    assert submission.request_id == gateway.accepted[0]
    assert submission.status == "QUEUED"


def test_submission_sends_the_reference_headers_and_body(client, gateway):
    client.submit(IMAGE, WEBHOOK)
    [post] = gateway.posts()
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["Cache-Control"] == "no-cache"
    assert post.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert post.headers["X-Webhook-URL"] == WEBHOOK
    assert post.json() == {"image_url": IMAGE}


@pytest.mark.parametrize(
    ("code", "body", "reason"),
    [
        (
            400,
            {"error": "Model not found", "message": "Model 'bria-rmbg-2-0-682' not found or is disabled"},
            "gateway-bad-request",
        ),
        (
            401,
            {"error": "Unauthorized", "message": "Access denied due to invalid subscription key."},
            "gateway-unauthorized",
        ),
        (
            402,
            {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."},
            "gateway-insufficient-balance",
        ),
        (403, {"error": "Forbidden", "message": "no access"}, "gateway-forbidden"),
        (404, {"error": "Not Found", "message": "Resource not found"}, "gateway-not-found"),
    ],
)
def test_permanent_answers_raise_permanent_error_with_reason(client, gateway, code, body, reason):
    gateway.submit_replies.append(Reply(code, body))
    with pytest.raises(GatewayPermanentError) as info:
        client.submit(IMAGE, WEBHOOK)
    error = info.value
    assert (error.http_status, error.reason, error.transient) == (code, reason, False)
    assert body["error"] in error.gateway_error and error.what_to_do


def test_429_carries_retry_after(client, gateway):
    gateway.submit_replies.append(Reply(429, {"error": "Too Many Requests"}, {"Retry-After": "37"}))
    with pytest.raises(GatewayTransientError) as info:
        client.submit(IMAGE, WEBHOOK)
    assert info.value.http_status == 429 and info.value.retry_after == 37.0
    assert not isinstance(info.value, GatewayInDoubt)


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors_are_transient(client, gateway, code):
    gateway.submit_replies.append(Reply(code, b"<html>upstream error</html>"))
    with pytest.raises(GatewayTransientError) as info:
        client.submit(IMAGE, WEBHOOK)
    assert info.value.http_status == code and not isinstance(info.value, GatewayInDoubt)


def test_read_timeout_after_sending_is_in_doubt(client, gateway):
    # Given a gateway that received the request but answers too late
    gateway.submit_replies.append(Reply(202, {"request_id": new_request_id(), "status": "QUEUED"}, delay=1.5))
    # When the client submits
    with pytest.raises(GatewayInDoubt):
        client.submit(IMAGE, WEBHOOK)
    # Then the request did reach the gateway (that is why it is in doubt, not merely transient)
    assert len(gateway.posts()) == 1


def test_connection_refused_is_transient_not_in_doubt():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = PixazoGateway(f"http://127.0.0.1:{port}", MODEL_PATH, lambda: KEY, urllib3.PoolManager(), 0.5)
    with pytest.raises(GatewayTransientError) as info:
        client.submit(IMAGE, WEBHOOK)
    assert not isinstance(info.value, GatewayInDoubt)


@pytest.mark.parametrize("body", [b"<html>OK</html>", b"{}", b'{"request_id": ""}', b"[1]"])
def test_accepted_but_undocumented_answer_is_in_doubt(client, gateway, body):
    gateway.submit_replies.append(Reply(202, body))
    with pytest.raises(GatewayInDoubt):
        client.submit(IMAGE, WEBHOOK)


def test_status_completed_is_parsed(client, gateway):
    rid = new_request_id()
    url = "https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/x/output.ext"
    gateway.statuses[rid] = Reply(200, status_doc(rid, "COMPLETED", [url]))
    status = client.status(rid)
    assert (status.request_id, status.status, status.media_urls, status.error) == (rid, "COMPLETED", (url,), None)
    [get] = [r for r in gateway.requests if r.method == "GET"]
    assert get.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert get.path == f"/v2/requests/status/{rid}"


def test_status_error_is_parsed(client, gateway):
    rid = new_request_id()
    gateway.statuses[rid] = Reply(200, status_doc(rid, "ERROR", error="Description of the error"))
    status = client.status(rid)
    assert (status.status, status.error, status.media_urls) == ("ERROR", "Description of the error", ())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps({"status": "COMPLETED"}).encode(),
        json.dumps({"request_id": "x", "status": "DONE"}).encode(),
    ],
)
def test_unusable_status_answer_is_transient(client, gateway, body):
    rid = new_request_id()
    gateway.statuses[rid] = Reply(200, body)
    with pytest.raises(GatewayTransientError):
        client.status(rid)


def test_status_naming_another_request_is_transient(client, gateway):
    rid = new_request_id()
    gateway.statuses[rid] = Reply(200, status_doc(new_request_id(), "COMPLETED", ["https://x/y.png"]))
    with pytest.raises(GatewayTransientError):
        client.status(rid)


def test_status_of_unknown_request_is_permanent_404(client, gateway):
    with pytest.raises(GatewayPermanentError) as info:
        client.status(new_request_id())
    assert info.value.http_status == 404


def test_status_timeout_is_transient(client, gateway):
    rid = new_request_id()
    gateway.statuses[rid] = Reply(200, status_doc(rid, "QUEUED"), delay=1.5)
    with pytest.raises(GatewayTransientError):
        client.status(rid)


def test_status_call_ends_by_the_invocations_deadline(client, gateway):
    # Given a gateway that answers after 1.5 s and a client whose invocation has 0.3 s left
    import time

    request_id = new_request_id()
    gateway.statuses[request_id] = Reply(200, status_doc(request_id, "COMPLETED"), delay=1.5)
    slow_ok = PixazoGateway(gateway.base_url, MODEL_PATH, lambda: KEY, urllib3.PoolManager(), timeout_seconds=2.0)
    started = time.monotonic()
    bounded = slow_ok.until(started + 0.3)
    # When the status is asked for
    # Then the call gives up at the deadline as a transient error (the callback answers 503)
    with pytest.raises(GatewayTransientError):
        bounded.status(request_id)
    assert time.monotonic() - started < 1.0


def test_no_time_left_makes_no_gateway_call(client, gateway):
    import time

    request_id = new_request_id()
    gateway.statuses[request_id] = Reply(200, status_doc(request_id, "COMPLETED"))
    with pytest.raises(GatewayTransientError, match="no time left"):
        client.until(time.monotonic() - 1).status(request_id)
    assert gateway.count() == 0
    # and the client it was copied from keeps its own time-outs
    assert client.status(request_id).status == "COMPLETED"
