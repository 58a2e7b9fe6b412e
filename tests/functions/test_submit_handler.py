"""The submit function end to end: SQS event -> handler -> moto S3/DynamoDB/SQS and a fake gateway."""

import io
import json
import os
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from events_kit import load_event
from functions_kit import API_KEY, CALLBACK_BASE, Reply, cutout_png, image_bytes, new_request_id

JPEG = image_bytes("JPEG", (40, 30))


@pytest.fixture
def submit(cutouts):
    from cutouts.handlers import submit as module

    return module


def run(submit, event, lambda_context):
    return submit.handler(event, lambda_context)


def job_for(cutouts, key):
    from cutouts.keys import job_id_for

    head = cutouts.s3.head_object(Bucket=cutouts.bucket, Key=key)
    return cutouts.services().store.get(job_id_for(cutouts.bucket, key, head["ETag"].strip('"')))


def test_s3_test_event_is_ignored(submit, cutouts, lambda_context):
    # Given the message S3 sends when notifications are configured
    event = load_event("sqs_s3_test_event")
    # When the submit function receives it
    result = run(submit, event, lambda_context)
    # Then it succeeds and does nothing
    assert result == {"batchItemFailures": []}
    assert cutouts.gateway.posts() == [] and cutouts.all_items() == [] and cutouts.keys("failed/") == []


def test_canonical_encoded_key_is_decoded_presigned_and_submitted(submit, cutouts, lambda_context):
    # Given "uploads/red flower+é.jpg" uploaded, and the canonical event naming it URL-encoded
    key = "uploads/red flower+é.jpg"
    cutouts.gateway.fetch_image_url = True
    body = cutouts.notification(key, JPEG, raw_key="uploads/red+flower%2B%C3%A9.jpg")
    # When the submit function runs
    result = run(submit, cutouts.sqs_event([body]), lambda_context)
    # Then the gateway got one POST whose presigned URL serves exactly the uploaded bytes
    assert result == {"batchItemFailures": []}
    [post] = cutouts.gateway.posts()
    assert cutouts.gateway.fetched_images == [(200, JPEG)]
    assert post.headers["Ocp-Apim-Subscription-Key"] == API_KEY
    assert "X-Amz-Signature=" in post.json()["image_url"]
    # and the webhook URL names the job, the attempt and a valid token
    job = job_for(cutouts, key)
    webhook = urlsplit(post.headers["X-Webhook-URL"])
    query = parse_qs(webhook.query)
    assert f"{webhook.scheme}://{webhook.netloc}" == CALLBACK_BASE
    assert webhook.path == f"/callback/{job.job_id}" and query["attempt"] == ["1"]
    assert cutouts.services().signer.verify(job.job_id, 1, query["token"][0])
    # and the job is recorded as submitted with the gateway's request id
    assert (job.status, job.request_id, job.key, job.attempt) == ("SUBMITTED", cutouts.gateway.accepted[0], key, 1)


@pytest.mark.parametrize(
    "key",
    [
        "uploads/a/b/c/d/e/f/g/deep folder/cat 1.png",
        "uploads/100% real+fake=✓.png",  # a WebP is normalised first now (tests/local/test_profiles_e2e.py)
        "uploads/日本語/猫 ねこ.jpg",
    ],
)
def test_keys_with_spaces_plus_percent_unicode_and_deep_folders_are_submitted(submit, cutouts, lambda_context, key):
    cutouts.gateway.fetch_image_url = True
    data = image_bytes({"png": "PNG", "webp": "WEBP", "jpg": "JPEG"}[key.rsplit(".", 1)[1]])
    run(submit, cutouts.sqs_event([cutouts.notification(key, data)]), lambda_context)
    assert cutouts.gateway.fetched_images == [(200, data)]
    assert job_for(cutouts, key).status == "SUBMITTED"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.jpg", b"", "empty-file"),
        ("notes.jpg", b"just some text, not a photo\n" * 10, "unsupported-type"),
        ("scan.jpg", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n%%EOF\n", "unsupported-type"),
        ("cut.jpg", JPEG[: len(JPEG) // 2], "truncated-image"),
        ("cut.png", image_bytes("PNG", (64, 64))[:-30], "truncated-image"),
    ],
)
def test_bad_input_gets_a_failure_report_and_no_gateway_call(submit, cutouts, lambda_context, name, data, reason):
    # Given a bad upload
    key = f"uploads/bad/{name}"
    # When the submit function runs
    result = run(submit, cutouts.sqs_event([cutouts.notification(key, data)]), lambda_context)
    # Then a report says why, the job is FAILED, and the gateway was never called
    assert result == {"batchItemFailures": []}
    report = cutouts.report(f"failed/bad/{name}.json")
    assert report["reason"] == reason and report["source_key"] == key and report["what_to_do"]
    assert job_for(cutouts, key).status == "FAILED"
    assert cutouts.gateway.posts() == []


def test_image_over_the_size_cap_is_reported(submit, cutouts, lambda_context, monkeypatch):
    monkeypatch.setenv("CUTOUTS_MAX_IMAGE_BYTES", "1000")
    from cutouts import runtime

    runtime.reset()
    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("RGB", (40, 40), os.urandom(40 * 40 * 3)).save(buf, "PNG")  # noise: does not compress
    data = buf.getvalue()
    assert len(data) > 1000
    run(submit, cutouts.sqs_event([cutouts.notification("uploads/big.png", data)]), lambda_context)
    assert cutouts.report("failed/big.png.json")["reason"] == "too-large"
    assert cutouts.gateway.posts() == []


def test_one_bad_record_leaves_the_good_one_unaffected(submit, cutouts, lambda_context):
    bodies = [cutouts.notification("uploads/empty.jpg", b""), cutouts.notification("uploads/good.jpg", JPEG)]
    result = run(submit, cutouts.sqs_event(bodies), lambda_context)
    assert result == {"batchItemFailures": []}
    assert len(cutouts.gateway.posts()) == 1
    assert job_for(cutouts, "uploads/good.jpg").status == "SUBMITTED"


def test_same_event_delivered_twice_is_submitted_once(submit, cutouts, lambda_context):
    body = cutouts.notification("uploads/dup.jpg", JPEG)
    run(submit, cutouts.sqs_event([body]), lambda_context)
    result = run(submit, cutouts.sqs_event([body]), lambda_context)
    assert result == {"batchItemFailures": []}
    assert len(cutouts.gateway.posts()) == 1


def test_two_concurrent_deliveries_make_exactly_one_gateway_post(cutouts):
    # Given one upload whose notification is being handled by two invocations at once
    from cutouts.notifications import source_from_s3_record
    from cutouts.submission import submit_source

    body = json.loads(cutouts.notification("uploads/race.jpg", JPEG))
    cutouts.gateway.submit_delay = 0.3
    barrier, outcomes = threading.Barrier(2), []

    def deliver():
        services = cutouts.services()
        source = source_from_s3_record(body["Records"][0])
        barrier.wait()
        outcomes.append(submit_source(source, services, time.time()).result)

    # When both run
    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # Then the gateway saw one POST, and the other delivery knew it was a duplicate
    assert len(cutouts.gateway.posts()) == 1
    assert sorted(outcomes) == ["duplicate", "submitted"]


def test_429_fails_only_that_record_and_delays_it_at_least_retry_after(submit, cutouts, lambda_context):
    # Given a gateway that accepts the first image and answers 429 Retry-After: 120 to the second
    cutouts.gateway.submit_replies += [
        Reply(202, {"request_id": new_request_id(), "status": "QUEUED"}),
        Reply(429, {"error": "Too Many Requests"}, {"Retry-After": "120"}),
    ]
    event = cutouts.sqs_event(
        [
            cutouts.notification("uploads/a.jpg", JPEG),
            cutouts.notification("uploads/b.jpg", image_bytes("JPEG", (9, 9))),
        ]
    )
    calls = []
    sqs = cutouts.services().sqs
    sqs.meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility", lambda params, **kw: calls.append(dict(params))
    )
    try:
        # When the batch is processed
        result = run(submit, event, lambda_context)
    finally:
        sqs.meta.events.unregister("provide-client-params.sqs.ChangeMessageVisibility")
    # Then only the refused record comes back, not before Retry-After
    second = event["Records"][1]
    assert result == {"batchItemFailures": [{"itemIdentifier": second["messageId"]}]}
    assert len(calls) == 1 and calls[0]["ReceiptHandle"] == second["receiptHandle"]
    assert calls[0]["VisibilityTimeout"] >= 120 and calls[0]["QueueUrl"] == cutouts.queue_url
    assert job_for(cutouts, "uploads/b.jpg").status == "RETRY"
    assert job_for(cutouts, "uploads/a.jpg").status == "SUBMITTED"


def test_retry_after_429_submits_on_redelivery(submit, cutouts, lambda_context):
    cutouts.gateway.submit_replies.append(Reply(503, b"unavailable"))
    body = cutouts.notification("uploads/again.jpg", JPEG)
    with pytest.raises(Exception, match="All records failed"):
        run(submit, cutouts.sqs_event([body]), lambda_context)
    run(submit, cutouts.sqs_event([body], receive_count=2), lambda_context)
    assert len(cutouts.gateway.posts()) == 2
    assert job_for(cutouts, "uploads/again.jpg").status == "SUBMITTED"


@pytest.mark.parametrize(
    ("code", "reason", "metric"),
    [
        (402, "gateway-insufficient-balance", "GatewayInsufficientBalance"),
        (401, "gateway-unauthorized", "GatewayAuthErrors"),
    ],
)
def test_balance_and_auth_errors_end_the_job_with_a_report_and_a_metric(
    submit, cutouts, lambda_context, capsys, code, reason, metric
):
    cutouts.gateway.submit_replies.append(
        Reply(code, {"error": "Insufficient Balance" if code == 402 else "Unauthorized", "message": "nope"})
    )
    result = run(submit, cutouts.sqs_event([cutouts.notification("uploads/pay.jpg", JPEG)]), lambda_context)
    assert result == {"batchItemFailures": []}
    job = job_for(cutouts, "uploads/pay.jpg")
    report = cutouts.report("failed/pay.jpg.json")
    assert (job.status, report["reason"], report["http_status"]) == ("FAILED", reason, code)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(metric in doc and doc[metric] in (1, 1.0, [1.0]) for doc in emitted)


def test_transient_error_on_the_final_delivery_gives_up_with_a_report(submit, cutouts, lambda_context):
    cutouts.gateway.submit_replies.append(Reply(503, b"Service Unavailable"))
    event = cutouts.sqs_event([cutouts.notification("uploads/last.jpg", JPEG)], receive_count=6)
    result = run(submit, event, lambda_context)
    assert result == {"batchItemFailures": []}
    assert cutouts.report("failed/last.jpg.json")["reason"] == "gateway-gave-up"
    assert job_for(cutouts, "uploads/last.jpg").status == "FAILED"


def test_object_deleted_before_processing_is_reported(submit, cutouts, lambda_context):
    body = cutouts.notification("uploads/gone.jpg", JPEG)
    cutouts.s3.delete_object(Bucket=cutouts.bucket, Key="uploads/gone.jpg")
    result = run(submit, cutouts.sqs_event([body]), lambda_context)
    assert result == {"batchItemFailures": []}
    assert cutouts.report("failed/gone.jpg.json")["reason"] == "source-deleted"
    assert cutouts.gateway.posts() == []


def test_older_event_after_a_newer_upload_is_superseded_without_a_post(submit, cutouts, lambda_context):
    # Given the key was uploaded twice and the newer upload's event was handled first
    old = cutouts.notification("uploads/over.jpg", JPEG, sequencer="0055AED6DCD90281E5")
    new = cutouts.notification("uploads/over.jpg", image_bytes("JPEG", (50, 50)), sequencer="0055AED6DCD90281F0")
    run(submit, cutouts.sqs_event([new]), lambda_context)
    # When the older event arrives late
    result = run(submit, cutouts.sqs_event([old]), lambda_context)
    # Then it is not submitted
    assert result == {"batchItemFailures": []}
    assert len(cutouts.gateway.posts()) == 1
    assert cutouts.keys("failed/") == []


def test_event_for_an_overwritten_object_is_not_submitted(submit, cutouts, lambda_context):
    old = cutouts.notification("uploads/over2.jpg", JPEG, sequencer="0055AED6DCD90281E5")
    cutouts.put("uploads/over2.jpg", image_bytes("JPEG", (50, 50)))  # its own event has not arrived yet
    run(submit, cutouts.sqs_event([old]), lambda_context)
    assert cutouts.gateway.posts() == []


def test_records_outside_the_input_prefix_are_ignored(submit, cutouts, lambda_context):
    run(submit, cutouts.sqs_event([cutouts.notification("cutouts/loop.jpg.png", cutout_png())]), lambda_context)
    assert cutouts.gateway.posts() == [] and cutouts.all_items() == []


def test_crash_between_202_and_the_job_write_never_pays_twice(submit, cutouts, lambda_context, monkeypatch):
    from cutouts.handlers import webhook
    from cutouts.job_store import JobStore
    from cutouts.reconciliation import reconcile

    # Given the function dies right after the gateway accepted the image
    def crash(*args, **kwargs):
        raise RuntimeError("function killed")

    body = cutouts.notification("uploads/crash.jpg", JPEG)
    with monkeypatch.context() as patch:
        patch.setattr(JobStore, "mark_submitted", crash)
        with pytest.raises(Exception, match="All records failed"):
            run(submit, cutouts.sqs_event([body]), lambda_context)
    [post] = cutouts.gateway.posts()
    request_id = cutouts.gateway.accepted[0]
    job = job_for(cutouts, "uploads/crash.jpg")
    assert (job.status, job.request_id) == ("SUBMITTING", None)

    # When SQS redelivers the message
    result = run(submit, cutouts.sqs_event([body], receive_count=2), lambda_context)
    # Then there is no second POST
    assert result == {"batchItemFailures": []}
    assert len(cutouts.gateway.posts()) == 1

    # When the reconciler runs after the claim's lease ran out
    reconcile(cutouts.services(), time.time() + 200)
    # Then the job is parked IN_DOUBT, still without a second POST
    assert job_for(cutouts, "uploads/crash.jpg").status == "IN_DOUBT"
    assert len(cutouts.gateway.posts()) == 1

    # When the gateway's genuine callback arrives, through the webhook URL it was given
    png = cutout_png()
    cutouts.gateway.complete(request_id, png)
    from functions_kit import callback_event, status_doc

    query = parse_qs(urlsplit(post.headers["X-Webhook-URL"]).query)
    event = callback_event(
        job.job_id,
        attempt=query["attempt"][0],
        token=query["token"][0],
        body=json.dumps(status_doc(request_id, "COMPLETED", ["https://x/y.png"])),
    )
    reply = webhook.handler(event, lambda_context)
    # Then the job adopts the request and completes
    assert reply["statusCode"] == 200
    done = job_for(cutouts, "uploads/crash.jpg")
    assert (done.status, done.request_id) == ("COMPLETED", request_id)
    assert cutouts.s3.get_object(Bucket=cutouts.bucket, Key="cutouts/crash.jpg.png")["Body"].read() == png
    assert len(cutouts.gateway.posts()) == 1


def test_a_record_taken_with_too_little_time_left_goes_back_untouched(submit, cutouts, lambda_context):
    # Given an invocation with only three seconds left (less than one record may take)
    from dataclasses import replace

    short = replace(lambda_context)
    short.get_remaining_time_in_millis = lambda: 3_000  # type: ignore[method-assign]
    event = cutouts.sqs_event([cutouts.notification("uploads/cat.jpg", JPEG)])
    # When the record is handled
    result = submit.handler(event, short)
    # Then it is handed back (kept by SQS) without failing the invocation
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    # and nothing was claimed or paid: the record went back to the queue as it was
    assert cutouts.all_items() == [] and cutouts.gateway.posts() == []
