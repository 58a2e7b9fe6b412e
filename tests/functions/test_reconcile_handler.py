"""The reconcile function on its EventBridge schedule."""

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from events_kit import load_event
from functions_kit import cutout_png, image_bytes, submitted

LONG_AGO = 1000  # seconds: past the stale threshold (300 s), inside the maximum age (3600 s)


@pytest.fixture
def reconcile(cutouts):
    from cutouts.handlers import reconcile as module

    def run(lambda_context):
        return module.handler(load_event("eventbridge_scheduled"), lambda_context)

    return run


def test_stale_submitted_job_is_finished_through_the_status_endpoint(reconcile, cutouts, lambda_context):
    # Given a job submitted long ago whose callback never came, and a gateway that has finished it
    job, _, _ = submitted(cutouts, now=time.time() - LONG_AGO)
    png = cutout_png()
    cutouts.gateway.complete(job.request_id, png)
    # When the schedule fires
    counts = reconcile(lambda_context)
    # Then the job is completed from the status endpoint's answer
    assert counts.get("completed") == 1
    assert cutouts.services().store.get(job.job_id).status == "COMPLETED"
    assert cutouts.s3.get_object(Bucket=cutouts.bucket, Key="cutouts/pets/cat.jpg.png")["Body"].read() == png


def test_recent_submitted_job_is_left_alone(reconcile, cutouts, lambda_context):
    job, _, _ = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    reconcile(lambda_context)
    assert cutouts.services().store.get(job.job_id).status == "SUBMITTED"
    assert not [r for r in cutouts.gateway.requests if r.method == "GET"]


def test_stale_job_still_processing_stays_open_and_is_not_resubmitted(reconcile, cutouts, lambda_context):
    job, _, _ = submitted(cutouts, now=time.time() - LONG_AGO)
    cutouts.gateway.set_status(job.request_id, "PROCESSING")
    reconcile(lambda_context)
    again = cutouts.services().store.get(job.job_id)
    assert again.status == "SUBMITTED" and again.updated_at > job.updated_at
    assert len(cutouts.gateway.posts()) == 1 and cutouts.keys("failed/") == []


def test_job_the_gateway_reported_as_error_is_resubmitted_with_the_next_attempt(reconcile, cutouts, lambda_context):
    # Given a job the gateway reported ERROR (not charged)
    past = time.time() - LONG_AGO
    job, _, _ = submitted(cutouts, now=past)
    store = cutouts.services().store
    assert store.mark_resubmit(job.job_id, job.request_id, past, "Description of the error")
    first_post = cutouts.gateway.posts()[0]
    # When the schedule fires
    reconcile(lambda_context)
    # Then it is submitted again as attempt 2, with its own callback token and a presigned URL
    posts = cutouts.gateway.posts()
    assert len(posts) == 2
    query = parse_qs(urlsplit(posts[1].headers["X-Webhook-URL"]).query)
    assert query["attempt"] == ["2"] and cutouts.services().signer.verify(job.job_id, 2, query["token"][0])
    assert query["token"] != parse_qs(urlsplit(first_post.headers["X-Webhook-URL"]).query)["token"]
    assert "X-Amz-Signature=" in posts[1].json()["image_url"]
    again = store.get(job.job_id)
    assert (again.status, again.attempt, again.request_id) == ("SUBMITTED", 2, cutouts.gateway.accepted[1])


def test_resubmission_stops_at_max_attempts_with_a_report(reconcile, cutouts, lambda_context, monkeypatch):
    monkeypatch.setenv("CUTOUTS_MAX_ATTEMPTS", "1")
    from cutouts import runtime

    runtime.reset()
    past = time.time() - LONG_AGO
    job, _, _ = submitted(cutouts, now=past)
    cutouts.services().store.mark_resubmit(job.job_id, job.request_id, past, "Description of the error")
    reconcile(lambda_context)
    assert len(cutouts.gateway.posts()) == 1
    assert cutouts.report("failed/pets/cat.jpg.json")["reason"] == "gateway-error-exhausted"
    assert cutouts.services().store.get(job.job_id).status == "FAILED"


def test_job_older_than_the_maximum_age_is_timed_out(reconcile, cutouts, lambda_context):
    job, _, _ = submitted(cutouts, now=time.time() - 4000)
    cutouts.gateway.set_status(job.request_id, "PROCESSING")
    reconcile(lambda_context)
    report = cutouts.report("failed/pets/cat.jpg.json")
    assert report["reason"] == "timed-out" and report["request_id"] == job.request_id
    assert cutouts.services().store.get(job.job_id).status == "FAILED"


def test_dead_lettered_upload_gets_a_report(reconcile, cutouts, lambda_context):
    # Given an upload whose message ended in the dead-letter queue
    body = cutouts.notification("uploads/poison.jpg", image_bytes("JPEG"))
    cutouts.sqs.send_message(QueueUrl=cutouts.dlq_url, MessageBody=body)
    # When the schedule fires
    counts = reconcile(lambda_context)
    # Then the upload has a report and a final job, and a second pass does not report it again
    assert counts.get("dead-lettered") == 1
    report = cutouts.report("failed/poison.jpg.json")
    assert report["reason"] == "dead-lettered" and report["source_key"] == "uploads/poison.jpg"
    assert cutouts.gateway.posts() == []
    assert all(item["status"]["S"] == "FAILED" for item in cutouts.all_items() if item["pk"]["S"].startswith("job#"))


def test_dead_letter_sweep_ignores_test_events_and_garbage(reconcile, cutouts, lambda_context):
    test_event = load_event("sqs_s3_test_event")["Records"][0]["body"]
    cutouts.sqs.send_message(QueueUrl=cutouts.dlq_url, MessageBody=test_event)
    cutouts.sqs.send_message(QueueUrl=cutouts.dlq_url, MessageBody="not json")
    counts = reconcile(lambda_context)
    assert counts.get("dead-lettered", 0) == 0 and cutouts.keys("failed/") == []


def test_reconcile_handler_returns_what_the_pass_did_as_json(reconcile, cutouts, lambda_context):
    # Given one stale job the gateway has finished
    job, _, _ = submitted(cutouts, now=time.time() - LONG_AGO)
    cutouts.gateway.complete(job.request_id, cutout_png())
    # When the schedule fires
    counts = json.loads(json.dumps(reconcile(lambda_context)))
    # Then the handler's answer says what the pass did, as plain JSON
    assert counts == {"completed": 1, "dead-lettered": 0}
