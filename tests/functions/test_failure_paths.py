"""Every failure path leaves the job safe: faults injected at the AWS call where they hurt most.

Each test feeds AWS-shaped events (or drives the use case the schedule drives) and makes one call
fail, or arrive twice, late, or from a stranger, then checks nothing was paid for twice, nothing
unchecked was paid for, and every input still ends as a cutout or a report.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from functions_kit import Reply, callback_event, cutout_png, image_bytes, status_doc, submitted, unique_image

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
LONG_AGO = 1000  # past the stale threshold and the in-doubt grace, inside the maximum age


def client_error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def fail_first(monkeypatch: Any, client: Any, method: str, code: str = "SlowDown", status: int = 503, times: int = 1):
    """Make the next ``times`` calls of ``client.method`` raise as AWS would; returns the call log."""
    real, calls = getattr(client, method), []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) <= times:
            raise client_error(code, status, method)
        return real(*args, **kwargs)

    monkeypatch.setattr(client, method, failing)
    return calls


@pytest.fixture
def submit(cutouts, lambda_context):
    from cutouts.handlers import submit as module

    def run(bodies: list[str], receive_count: int | None = None) -> dict[str, Any]:
        event = cutouts.sqs_event(bodies, receive_count)
        try:
            return module.handler(event, lambda_context)
        except BatchProcessingError:  # every record failed: the whole batch goes back to the queue
            return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    return run


@pytest.fixture
def reconcile(cutouts):
    from cutouts.reconciliation import reconcile as run

    return lambda now=None, **kwargs: run(cutouts.services(), time.time() if now is None else now, **kwargs)


@pytest.fixture
def webhook(cutouts, lambda_context):
    from cutouts.handlers import webhook as module

    def call(job_id: str, attempt: str, token: str, body: dict[str, Any]) -> tuple[int, str]:
        reply = module.handler(
            callback_event(job_id, attempt=attempt, token=token, body=json.dumps(body)), lambda_context
        )
        return reply["statusCode"], json.loads(reply["body"])["message"]

    return call


def job_items(cutouts) -> list[dict[str, Any]]:
    return [item for item in cutouts.all_items() if item["pk"]["S"].startswith("job#")]


def in_doubt(cutouts, key: str, body: bytes, since: float):
    """A job whose POST got no answer ``since`` seconds ago (the gateway may or may not have it)."""
    from cutouts.notifications import source_from_s3_record

    source = source_from_s3_record(json.loads(cutouts.notification(key, body))["Records"][0])
    store = cutouts.services().store
    job = source.new_job()
    assert store.claim(job, since, 120)
    assert store.mark_in_doubt(job.job_id, job.attempt, since, "read timed out")
    return store.get(job.job_id)


# --- a fault before the POST pays nothing and loses nothing ---------------------------------------


def test_a_source_read_throttled_once_pays_nothing_and_the_redelivery_reports_the_pdf(submit, cutouts, monkeypatch):
    # Given a PDF uploaded as report.jpg, and S3 answering the first read with SlowDown
    body = cutouts.notification("uploads/report.jpg", PDF)
    fail_first(monkeypatch, cutouts.services().s3, "get_object")
    # When the submit function takes the message
    first = submit([body])
    # Then the record goes back to the queue, nothing is claimed and nothing is paid
    assert len(first["batchItemFailures"]) == 1
    assert job_items(cutouts) == [] and cutouts.gateway.posts() == []
    # and when the queue delivers it again, the PDF gets its report and is never submitted
    assert submit([body], receive_count=2) == {"batchItemFailures": []}
    assert cutouts.report("failed/report.jpg.json")["reason"] == "unsupported-type"
    assert cutouts.gateway.posts() == []


def test_a_report_that_cannot_be_written_hands_the_job_back_to_the_queue(submit, cutouts, monkeypatch):
    # Given a PDF, and S3 refusing the first write of its report
    body = cutouts.notification("uploads/report.jpg", PDF)
    fail_first(monkeypatch, cutouts.services().s3, "put_object", code="InternalError", status=500)
    # When the submit function takes the message
    assert len(submit([body])["batchItemFailures"]) == 1
    # Then the job is back in RETRY (not SUBMITTING: nothing could have been sent)
    [item] = job_items(cutouts)
    assert item["status"]["S"] == "RETRY"
    # and the redelivery writes the report
    assert submit([body], receive_count=2) == {"batchItemFailures": []}
    assert cutouts.report("failed/report.jpg.json")["reason"] == "unsupported-type"
    assert [i["status"]["S"] for i in job_items(cutouts)] == ["FAILED"] and cutouts.gateway.posts() == []


def test_a_dynamodb_error_on_the_key_record_pays_nothing(submit, cutouts, monkeypatch):
    from cutouts.job_store import JobStore, JobStoreError

    body = cutouts.notification("uploads/cat.jpg", image_bytes("JPEG"))
    real, calls = JobStore.note_newest, []

    def throttled_once(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise JobStoreError("DynamoDB update failed: ProvisionedThroughputExceededException")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(JobStore, "note_newest", throttled_once)
    assert len(submit([body])["batchItemFailures"]) == 1
    assert job_items(cutouts) == [] and cutouts.gateway.posts() == []
    assert submit([body], receive_count=2) == {"batchItemFailures": []}
    assert len(cutouts.gateway.posts()) == 1


def test_a_resubmission_reads_the_source_again_and_never_pays_for_a_replaced_file(reconcile, cutouts):
    # Given a job in doubt long enough to be resubmitted, whose key now holds a PDF
    job = in_doubt(cutouts, "uploads/cat.jpg", image_bytes("JPEG"), time.time() - LONG_AGO)
    cutouts.put("uploads/cat.jpg", PDF)
    # When the reconciler runs
    counts = reconcile()
    # Then nothing is sent: the version it was asked for is gone
    assert cutouts.gateway.posts() == [] and counts.get("superseded") == 1
    assert cutouts.services().store.get(job.job_id).status == "SUPERSEDED"


def test_a_resubmission_of_a_deleted_source_ends_with_a_report_and_no_payment(reconcile, cutouts):
    job = in_doubt(cutouts, "uploads/cat.jpg", image_bytes("JPEG"), time.time() - LONG_AGO)
    cutouts.s3.delete_object(Bucket=cutouts.bucket, Key="uploads/cat.jpg")
    reconcile()
    assert cutouts.gateway.posts() == []
    assert cutouts.report("failed/cat.jpg.json")["reason"] == "source-deleted"
    assert cutouts.services().store.get(job.job_id).status == "FAILED"


def test_a_resubmission_whose_source_read_fails_stays_in_doubt_and_is_counted(reconcile, cutouts, monkeypatch):
    job = in_doubt(cutouts, "uploads/cat.jpg", image_bytes("JPEG"), time.time() - LONG_AGO)
    fail_first(monkeypatch, cutouts.services().s3, "get_object")
    counts = reconcile()
    assert counts.get("error") == 1 and cutouts.gateway.posts() == []
    again = cutouts.services().store.get(job.job_id)
    assert (again.status, again.attempt, again.errors) == ("IN_DOUBT", 1, 1)
    # and a pass after the grace period, with S3 well again, resubmits it as the next attempt
    reconcile(now=time.time() + LONG_AGO)
    assert len(cutouts.gateway.posts()) == 1
    assert cutouts.services().store.get(job.job_id).attempt == 2


# --- the reconciler: one bad job never stalls a pass ----------------------------------------------


def test_a_malformed_media_url_is_a_rejected_result_and_the_next_job_still_completes(reconcile, cutouts):
    # Given two stale jobs: the first one's status names an unparseable media URL
    past = time.time() - LONG_AGO
    bad, _, _ = submitted(cutouts, "uploads/a.jpg", now=past)
    good, _, _ = submitted(cutouts, "uploads/b.jpg", now=past + 1)
    from functions_kit import Reply

    cutouts.gateway.statuses[bad.request_id] = Reply(
        200, status_doc(bad.request_id, "COMPLETED", ["https://[pub-x.r2.dev/o.png"])
    )
    cutouts.gateway.complete(good.request_id, cutout_png())
    # When one pass runs
    counts = reconcile()
    # Then the bad one ends with a report, and the good one completes in the same pass
    assert counts.get("failed") == 1 and counts.get("completed") == 1
    assert cutouts.report("failed/a.jpg.json")["reason"] == "bad-output"
    assert cutouts.services().store.get(good.job_id).status == "COMPLETED"


def test_a_job_that_raises_is_skipped_counted_and_after_five_passes_reported(reconcile, cutouts, monkeypatch):
    # Given two stale jobs, and a status call that raises something nobody expected for the first
    past = time.time() - LONG_AGO
    bad, _, _ = submitted(cutouts, "uploads/a.jpg", now=past)
    good, _, _ = submitted(cutouts, "uploads/b.jpg", now=past + 1)
    cutouts.gateway.complete(good.request_id, cutout_png())
    from cutouts.pixazo import PixazoGateway

    services, real_status = cutouts.services(), PixazoGateway.status

    def status(self: PixazoGateway, request_id: str):
        if request_id == bad.request_id:
            raise KeyError("output")
        return real_status(self, request_id)

    monkeypatch.setattr(PixazoGateway, "status", status)
    # When a pass runs
    counts = reconcile()
    # Then the other job still completes, and the failing one is counted and sent to the back
    assert counts.get("completed") == 1 and counts.get("error") == 1
    assert services.store.get(bad.job_id).errors == 1
    # and after five failing passes it ends with a report instead of staying first forever
    for n in range(4):
        reconcile(now=time.time() + 400 * (n + 1))
    ended = services.store.get(bad.job_id)
    assert ended.status == "FAILED" and ended.reason == "reconcile-failed"
    assert cutouts.report("failed/a.jpg.json")["reason"] == "reconcile-failed"


def test_a_pass_stops_taking_jobs_when_its_time_runs_short(reconcile, cutouts):
    past = time.time() - LONG_AGO
    job, _, _ = submitted(cutouts, "uploads/a.jpg", now=past)
    cutouts.gateway.complete(job.request_id, cutout_png())
    counts = reconcile(remaining=lambda: 3.0)
    assert counts == {"deferred": 1}
    assert cutouts.services().store.get(job.job_id).status == "SUBMITTED"


# --- a request belongs to one job; an attempt number is never used twice --------------------------


def test_a_valid_url_of_an_in_doubt_job_cannot_adopt_another_jobs_request(webhook, cutouts):
    # Given job A in doubt (no request id yet) and job B submitted with its own request
    a = in_doubt(cutouts, "uploads/a.jpg", unique_image("a"), time.time())
    b, _, _ = submitted(cutouts, "uploads/b.jpg")
    cutouts.gateway.complete(b.request_id, cutout_png())
    token = cutouts.services().signer.token(a.job_id, a.attempt)
    # When A's genuine callback URL is called naming B's request
    code, message = webhook(a.job_id, str(a.attempt), token, status_doc(b.request_id, "COMPLETED", ["x"]))
    # Then it is refused, and A has not become B's image
    assert code == 409 and "another job" in message
    again = cutouts.services().store.get(a.job_id)
    assert (again.status, again.request_id) == ("IN_DOUBT", None)
    assert cutouts.keys("cutouts/") == []


def test_after_an_operator_retry_the_first_runs_callback_url_is_stale(webhook, submit, cutouts):
    # Given a job that failed on its first run, then was reopened and submitted again
    job, attempt, token = submitted(cutouts, "uploads/a.jpg")
    store = cutouts.services().store
    assert store.mark_final(job, "FAILED", time.time(), "model-failed", "x")
    assert store.reopen(store.get(job.job_id), time.time())
    body = cutouts.notification("uploads/a.jpg", unique_image("uploads/a.jpg"))
    assert submit([body]) == {"batchItemFailures": []}
    retried = store.get(job.job_id)
    new_attempt = parse_qs(urlsplit(cutouts.gateway.posts()[-1].headers["X-Webhook-URL"]).query)["attempt"][0]
    assert int(new_attempt) > int(attempt) and retried.attempt == int(new_attempt) and retried.tries == 1
    # When the first run's late callback arrives on its own (genuine) URL
    cutouts.gateway.complete(job.request_id, cutout_png())
    code, _ = webhook(job.job_id, attempt, token, status_doc(job.request_id, "COMPLETED", ["x"]))
    # Then it is refused, and the retry's own request is still the job's
    assert code == 409
    assert store.get(job.job_id).request_id == retried.request_id != job.request_id


# --- a result the gateway billed is never thrown away ---------------------------------------------


def test_a_job_past_its_age_whose_result_is_ready_is_completed_not_timed_out(reconcile, cutouts):
    job, _, _ = submitted(cutouts, "uploads/a.jpg", now=time.time() - 4000)
    png = cutout_png()
    cutouts.gateway.complete(job.request_id, png)
    counts = reconcile()
    assert counts.get("completed") == 1 and cutouts.keys("failed/") == []
    assert cutouts.s3.get_object(Bucket=cutouts.bucket, Key="cutouts/a.jpg.png")["Body"].read() == png


def test_a_late_callback_completes_a_timed_out_job_and_removes_its_report(reconcile, webhook, cutouts):
    # Given a job timed out while the gateway was still processing it
    job, attempt, token = submitted(cutouts, "uploads/a.jpg", now=time.time() - 4000)
    cutouts.gateway.set_status(job.request_id, "PROCESSING")
    reconcile()
    assert cutouts.report("failed/a.jpg.json")["reason"] == "timed-out"
    # When the gateway finishes after all and calls back
    cutouts.gateway.complete(job.request_id, cutout_png())
    code, message = webhook(job.job_id, attempt, token, status_doc(job.request_id, "COMPLETED", ["x"]))
    # Then the billed result is written and the report goes
    assert (code, message) == (200, "completed")
    assert cutouts.services().store.get(job.job_id).status == "COMPLETED"
    assert cutouts.keys("failed/") == [] and cutouts.keys("cutouts/") == ["cutouts/a.jpg.png"]


# --- S3's limits are checked before paying --------------------------------------------------------


def test_a_key_whose_cutout_key_would_pass_1024_bytes_gets_a_hashed_report_and_no_payment(submit, cutouts):
    key = "uploads/" + "a" * 1010 + ".jpg"  # 1,022 bytes: the cutout's key would be 1,026
    assert submit([cutouts.notification(key, image_bytes("JPEG"))]) == {"batchItemFailures": []}
    assert cutouts.gateway.posts() == []
    report_key = f"failed/key-too-long/{hashlib.sha256(key.encode()).hexdigest()}.json"
    report = cutouts.report(report_key)
    assert report["reason"] == "key-too-long" and report["source_key"] == key


def test_a_long_non_ascii_key_gets_metadata_that_fits_s3s_2_kb(submit, cutouts):
    from cutouts.keys import MAX_METADATA_BYTES, metadata_bytes

    key = "uploads/" + "写真" * 120 + ".jpg"  # 728 bytes; percent-quoted it would be ~2.2 KB
    assert submit([cutouts.notification(key, image_bytes("JPEG"))]) == {"batchItemFailures": []}
    assert len(cutouts.gateway.posts()) == 1
    from cutouts.completion import settle_job

    [item] = job_items(cutouts)
    job = cutouts.services().store.get(item["job_id"]["S"])
    cutouts.gateway.complete(job.request_id, cutout_png())
    services = cutouts.services()
    assert settle_job(job, services.gateway.status(job.request_id), services, time.time()) == "completed"
    head = cutouts.s3.head_object(Bucket=cutouts.bucket, Key=job.output_key)
    assert metadata_bytes(head["Metadata"]) < MAX_METADATA_BYTES // 2
    assert head["Metadata"]["source-key-sha256"] == hashlib.sha256(key.encode()).hexdigest()


# --- event shapes S3 really sends -----------------------------------------------------------------


def test_a_console_folder_marker_is_ignored(submit, cutouts):
    body = cutouts.notification("uploads/holiday pics/", b"")
    assert submit([body]) == {"batchItemFailures": []}
    assert job_items(cutouts) == [] and cutouts.keys("failed/") == [] and cutouts.gateway.posts() == []


def test_version_null_from_a_suspended_bucket_is_keyed_on_the_etag(submit, cutouts):
    # Given two uploads of one key in a bucket whose versioning is suspended (versionId "null")
    bodies = []
    for n, sequencer in ((1, "0055AED6DCD90281E5"), (2, "0055AED6DCD90281E6")):
        doc = json.loads(cutouts.notification("uploads/cat.jpg", unique_image(f"v{n}"), sequencer=sequencer))
        doc["Records"][0]["s3"]["object"]["versionId"] = "null"
        bodies.append(json.dumps(doc))
        # When each is delivered after its upload
        assert submit([bodies[-1]]) == {"batchItemFailures": []}
    # Then the second is a new job (not dropped as a duplicate of the first) and was paid for
    items = job_items(cutouts)
    assert len(items) == 2 and len(cutouts.gateway.posts()) == 2
    assert all("version_id" not in item for item in items)


# --- the dead-letter sweep ------------------------------------------------------------------------


def test_a_reported_dead_letter_leaves_the_queue_and_is_counted_once(reconcile, cutouts):
    body = cutouts.notification("uploads/poison.jpg", image_bytes("JPEG"))
    cutouts.sqs.send_message(QueueUrl=cutouts.dlq_url, MessageBody=body)
    assert reconcile().get("dead-lettered") == 1
    attrs = cutouts.sqs.get_queue_attributes(QueueUrl=cutouts.dlq_url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0


def test_a_dead_letter_of_a_job_in_flight_or_retried_since_fails_nothing(reconcile, submit, cutouts):
    # Given a job submitted (its POST paid), and a stale copy of its message in the dead-letter queue
    job, _, _ = submitted(cutouts, "uploads/a.jpg")
    stale = cutouts.notification("uploads/a.jpg", None)
    doc = json.loads(stale)
    doc["Records"][0]["s3"]["object"]["eTag"] = job.etag
    cutouts.sqs.send_message(QueueUrl=cutouts.dlq_url, MessageBody=json.dumps(doc))
    # When the sweep runs
    counts = reconcile()
    # Then the live job is untouched and the stale message is gone
    assert counts.get("dead-lettered", 0) == 0
    assert cutouts.services().store.get(job.job_id).status == "SUBMITTED"
    attrs = cutouts.sqs.get_queue_attributes(QueueUrl=cutouts.dlq_url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessages"]) == 0


# --- identical bytes uploaded together are paid for once ------------------------------------------


def test_three_identical_images_in_one_batch_cost_one_call_and_give_three_cutouts(submit, webhook, cutouts):
    # Given three keys with the same bytes, delivered together
    same = unique_image("sku")
    bodies = [cutouts.notification(f"uploads/sku-{n}.jpg", same) for n in range(3)]
    assert submit(bodies) == {"batchItemFailures": []}
    # Then one POST went out and the other two wait for it
    [post] = cutouts.gateway.posts()
    assert sorted(i["status"]["S"] for i in job_items(cutouts)) == ["SUBMITTED", "WAITING", "WAITING"]
    # When the gateway calls back for the one that paid
    owner = next(
        cutouts.services().store.get(i["job_id"]["S"]) for i in job_items(cutouts) if i["status"]["S"] == "SUBMITTED"
    )
    png = cutout_png((20, 20))
    cutouts.gateway.complete(owner.request_id, png)
    query = parse_qs(urlsplit(post.headers["X-Webhook-URL"]).query)
    assert (
        webhook(owner.job_id, query["attempt"][0], query["token"][0], status_doc(owner.request_id, "COMPLETED", ["x"]))[
            0
        ]
        == 200
    )
    # Then all three have the cutout
    assert cutouts.keys("cutouts/") == [f"cutouts/sku-{n}.jpg.png" for n in range(3)]
    for n in range(3):
        assert cutouts.s3.get_object(Bucket=cutouts.bucket, Key=f"cutouts/sku-{n}.jpg.png")["Body"].read() == png
    assert {i["status"]["S"] for i in job_items(cutouts)} == {"COMPLETED"}


def test_identical_uploads_submitted_concurrently_have_exactly_one_payer(cutouts):
    import threading

    from cutouts.notifications import source_from_s3_record
    from cutouts.submission import submit_source

    same = unique_image("together")
    sources = [
        source_from_s3_record(json.loads(cutouts.notification(f"uploads/t-{n}.jpg", same))["Records"][0])
        for n in range(4)
    ]
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(submit_source(s, cutouts.services(), time.time()).result))
        for s in sources
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["submitted", "waiting", "waiting", "waiting"]
    assert len(cutouts.gateway.posts()) == 1


def identical_uploads_whose_payer_failed(submit, cutouts, name: str, copies: int, reason: str) -> None:
    """``copies`` identical uploads delivered together, and the one that paid ended FAILED for ``reason``."""
    same = unique_image(name)
    bodies = [cutouts.notification(f"uploads/{name}-{n}.jpg", same) for n in range(copies)]
    assert submit(bodies) == {"batchItemFailures": []}
    store = cutouts.services().store
    owner = next(store.get(i["job_id"]["S"]) for i in job_items(cutouts) if i["status"]["S"] == "SUBMITTED")
    assert store.mark_final(owner, "FAILED", time.time(), reason, "the payer's error")


def test_waiters_share_a_failure_the_same_bytes_would_meet_again(submit, reconcile, cutouts):
    identical_uploads_whose_payer_failed(submit, cutouts, "doomed", 2, "model-failed")
    reconcile()
    assert {i["status"]["S"] for i in job_items(cutouts)} == {"FAILED"}
    assert {cutouts.report(k)["reason"] for k in cutouts.keys("failed/")} == {"model-failed"}
    assert len(cutouts.gateway.posts()) == 1


def test_a_waiter_takes_over_when_the_payer_ended_without_a_result(submit, reconcile, cutouts):
    identical_uploads_whose_payer_failed(submit, cutouts, "orphan", 3, "gateway-gave-up")
    reconcile()
    # one waiter paid instead, the other still waits for it
    assert len(cutouts.gateway.posts()) == 2
    statuses = sorted(i["status"]["S"] for i in job_items(cutouts))
    assert statuses == ["FAILED", "SUBMITTED", "WAITING"]


def test_a_waiter_that_took_over_and_met_a_429_is_sent_again_by_the_next_pass(submit, reconcile, cutouts):
    # Given two identical uploads whose payer gave up on 429s
    identical_uploads_whose_payer_failed(submit, cutouts, "refused", 2, "gateway-error-exhausted")
    # When the waiter takes over and the gateway refuses its POST once
    cutouts.gateway.submit_replies.append(Reply(429, {"error": "Too Many Requests"}, {"Retry-After": "1"}))
    reconcile()
    # Then it waits for the reconciler (no queue message will bring a job the reconciler sent back)
    assert sorted(i["status"]["S"] for i in job_items(cutouts)) == ["FAILED", "RESUBMIT"]
    # And the next pass sends it again
    reconcile()
    assert len(cutouts.gateway.posts()) == 3
    assert sorted(i["status"]["S"] for i in job_items(cutouts)) == ["FAILED", "SUBMITTED"]


def queued_bodies(cutouts) -> list[str]:
    got = cutouts.sqs.receive_message(QueueUrl=cutouts.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [m["Body"] for m in got.get("Messages", [])]


def test_a_job_stranded_in_retry_without_its_message_gets_it_back_from_the_reconciler(submit, reconcile, cutouts):
    from cutouts.reconciliation import stranded_after_seconds

    # Given a job the gateway refused once, whose queue message was then lost
    cutouts.gateway.submit_replies.append(Reply(429, {"error": "Too Many Requests"}))
    body = cutouts.notification("uploads/lost.jpg", unique_image("lost"))
    assert len(submit([body])["batchItemFailures"]) == 1
    cutouts.sqs.purge_queue(QueueUrl=cutouts.queue_url)
    assert [i["status"]["S"] for i in job_items(cutouts)] == ["RETRY"]
    settings = cutouts.services().settings
    stranded = stranded_after_seconds(settings)
    assert stranded < settings.max_age_seconds
    # When the reconciler passes while the message may still be on its way
    reconcile(now=time.time() + stranded - 5)
    # Then it leaves the job to the queue
    assert queued_bodies(cutouts) == [] and [i["status"]["S"] for i in job_items(cutouts)] == ["RETRY"]
    # And once the job has waited longer than any message can take, the upload's notification is
    # queued again (not a POST from the reconciler: the submit function's concurrency and back-off apply)
    later = time.time() + stranded + 1
    assert reconcile(now=later).get("requeued") == 1
    assert len(cutouts.gateway.posts()) == 1
    [again] = queued_bodies(cutouts)
    # and not once more on the next pass
    assert reconcile(now=later + 60).get("requeued") is None
    # And the submit function takes it from there: same job, submitted
    assert submit([again]) == {"batchItemFailures": []}
    assert [i["status"]["S"] for i in job_items(cutouts)] == ["SUBMITTED"] and len(cutouts.gateway.posts()) == 2
    # And the lost message, should it come after all, is a duplicate that pays nothing
    assert submit([body], receive_count=2) == {"batchItemFailures": []}
    assert len(cutouts.gateway.posts()) == 2


def test_a_stranded_retry_job_whose_key_was_uploaded_again_is_superseded_not_queued(submit, reconcile, cutouts):
    from cutouts.reconciliation import stranded_after_seconds

    # Given a job stranded in RETRY, and a newer upload of its key
    cutouts.gateway.submit_replies.append(Reply(429, {"error": "Too Many Requests"}))
    assert len(submit([cutouts.notification("uploads/twice.jpg", unique_image("one"))])["batchItemFailures"]) == 1
    [stranded] = [i["job_id"]["S"] for i in job_items(cutouts)]
    assert submit([cutouts.notification("uploads/twice.jpg", unique_image("two"))]) == {"batchItemFailures": []}
    cutouts.sqs.purge_queue(QueueUrl=cutouts.queue_url)
    assert cutouts.services().store.get(stranded).status == "RETRY"
    # When the reconciler finds it stranded
    reconcile(now=time.time() + stranded_after_seconds(cutouts.services().settings) + 1)
    # Then it ends SUPERSEDED, and nothing is queued for it
    assert cutouts.services().store.get(stranded).status == "SUPERSEDED"
    assert queued_bodies(cutouts) == []


def test_a_waiter_never_outlives_the_maximum_age(submit, reconcile, cutouts):
    same = unique_image("slow")
    assert submit([cutouts.notification(f"uploads/s-{n}.jpg", same) for n in range(2)]) == {"batchItemFailures": []}
    owner = next(i for i in job_items(cutouts) if i["status"]["S"] == "SUBMITTED")
    cutouts.gateway.set_status(owner["request_id"]["S"], "PROCESSING")
    reconcile(now=time.time() + 4000)
    reasons = {cutouts.report(k)["reason"] for k in cutouts.keys("failed/")}
    assert reasons == {"timed-out"} and len(cutouts.gateway.posts()) == 1
