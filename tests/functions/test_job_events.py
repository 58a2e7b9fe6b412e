"""Completion events: one EventBridge event per job end, never a second, never at the cost of the cutout."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from events_kit import ACCOUNT, REGION, load_event
from functions_kit import callback_event, cutout_png, status_doc, submitted

from cutouts import constants as c
from cutouts.job_events import (
    BUDGET_REACHED,
    CUTOUT_PARKED,
    EventAnnouncer,
    budget_reached,
    cutout_created,
    cutout_failed,
    cutout_parked,
    put_events,
)
from cutouts.job_record import Job
from cutouts.job_store import JobStore
from cutouts.reports import ADVICE

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


class Counted:
    """A MetricsSink that remembers what was counted."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def count(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def seconds(self, name: str, value: float) -> None:
        return None

    def failure(self, reason: str) -> None:
        return None


@pytest.fixture
def webhook(cutouts):
    from cutouts.handlers import webhook as module

    return module


@pytest.fixture
def bus(cutouts, moto_server):
    """A rule on the default bus forwarding every ``cutouts`` event to a queue, as a user's rule would."""
    events = boto3.client("events", endpoint_url=moto_server, **CREDS)
    queue_url = cutouts.sqs.create_queue(QueueName="cutout-events")["QueueUrl"]
    arn = cutouts.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="cutout-events", EventPattern=json.dumps({"source": [c.EVENT_SOURCE]}))
    events.put_targets(Rule="cutout-events", Targets=[{"Id": "queue", "Arn": arn}])

    def delivered() -> list[dict[str, Any]]:
        got = []
        while True:
            reply = cutouts.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not reply.get("Messages"):
                return got
            for message in reply["Messages"]:
                got.append(json.loads(message["Body"]))
                cutouts.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return delivered


def callback(webhook, lambda_context, job, token, body: str) -> int:
    event = callback_event(job.job_id, attempt=str(job.attempt), token=token, body=body)
    reply = webhook.handler(event, lambda_context)
    return int(reply["statusCode"])


def completed_body(job: Job) -> str:
    url = "https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/x/output.png"
    return json.dumps(status_doc(job.request_id, "COMPLETED", [url]))


def failing_events_client(times: int) -> tuple[Any, Stubber]:
    client = boto3.client("events", **CREDS)
    stub = Stubber(client)
    for _ in range(times):
        stub.add_client_error("put_events", "InternalException", "EventBridge is having a bad day", 500)
    stub.activate()
    return client, stub


def hand_built_job(**changes: Any) -> Job:
    job = Job(
        job_id="5f0c2a9e4b1d7e3a",
        bucket="my-bucket",
        key="uploads/pets/cat.jpg",
        version="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY",
        status="COMPLETED",
        attempt=1,
        tries=1,
        version_id="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY",
        etag="9b2cf535f27731c974343645a3985328",
        request_id="f3a1c6e2-8d4b-4f0a-9c7e-2b5d1e6a7c90",
        created_at=1796078101.2,
        updated_at=1796078107.45,
        submitted_at=1796078101.9,
        finished_at=1796078107.45,
        output_key="cutouts/pets/cat.jpg.png",
        uploaded_at=1796078100.95,
    )
    for name, value in changes.items():
        setattr(job, name, value)
    return job


# --- one event per end, through the handlers ---------------------------------------------------


def test_a_completed_job_sends_one_cutout_created_and_a_duplicate_callback_sends_none(
    webhook, cutouts, bus, lambda_context
):
    # Given a submitted job whose result is ready
    job, _, token = submitted(cutouts, "uploads/pets/cat.jpg")
    cutouts.gateway.complete(job.request_id, cutout_png())
    # When the gateway calls back, and then calls back again
    assert callback(webhook, lambda_context, job, token, completed_body(job)) == 200
    assert callback(webhook, lambda_context, job, token, completed_body(job)) == 200
    # Then exactly one event was delivered, naming the cutout, and nothing is left pending
    (event,) = bus()
    assert (event["source"], event["detail-type"]) == ("cutouts", "Cutout Created")
    detail = event["detail"]
    assert detail["job_id"] == job.job_id and detail["event_key"] == f"{job.job_id}/{job.attempt}/COMPLETED"
    assert detail["outputs"] == [{"key": "cutouts/pets/cat.jpg.png", "profile": None, "output": None}]
    assert (detail["gateway_request_id"], detail["paid"], detail["reused"]) == (job.request_id, True, False)
    assert detail["source"]["key"] == "uploads/pets/cat.jpg" and detail["seconds_to_end"] >= 0
    assert detail["uploaded_at"] == "2024-05-01T12:00:00.000Z"  # the S3 record's eventTime, kept by the job
    assert cutouts.services().store.get(job.job_id).event_pending is None


def test_a_failed_job_sends_cutout_failed_with_the_reports_reason_and_advice(webhook, cutouts, bus, lambda_context):
    # Given a submitted job the model could not process
    job, _, token = submitted(cutouts)
    cutouts.gateway.set_status(job.request_id, "FAILED", "could not segment")
    body = json.dumps(status_doc(job.request_id, "FAILED", error="could not segment"))
    # When the gateway calls back
    assert callback(webhook, lambda_context, job, token, body) == 200
    # Then one Cutout Failed says what the report says
    (event,) = bus()
    report = cutouts.report("failed/pets/cat.jpg.json")
    failure = event["detail"]["failure"]
    assert event["detail-type"] == "Cutout Failed"
    assert (failure["reason"], failure["what_to_do"]) == (report["reason"], report["what_to_do"])
    assert failure["report_key"] == "failed/pets/cat.jpg.json" and event["detail"]["outputs"] == []


def test_an_eventbridge_failure_keeps_the_cutout_and_the_reconciler_sends_the_event_later(
    webhook, cutouts, bus, lambda_context, monkeypatch
):
    # Given EventBridge failing when the job completes
    from cutouts import runtime
    from cutouts.reconciliation import reconcile

    job, _, token = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    failing, _ = failing_events_client(times=4)  # botocore's own retries included
    real = runtime._clients()["events"]
    monkeypatch.setitem(runtime._clients(), "events", failing)
    # When the gateway calls back
    assert callback(webhook, lambda_context, job, token, completed_body(job)) == 200
    # Then the cutout and the job's end stand, marked as not announced, and no event went out
    assert cutouts.keys("cutouts/") == ["cutouts/pets/cat.jpg.png"]
    ended = cutouts.services().store.get(job.job_id)
    assert (ended.status, ended.event_pending) == ("COMPLETED", "COMPLETED")
    assert bus() == []
    # When EventBridge is back and the reconciler passes (after the writer's minute) twice
    monkeypatch.setitem(runtime._clients(), "events", real)
    counts = reconcile(cutouts.services(), time.time() + 120)
    again = reconcile(cutouts.services(), time.time() + 240)
    # Then the event went out once, and the mark is gone
    assert counts.get("events-sent") == 1 and not again.get("events-sent")
    (event,) = bus()
    assert event["detail"]["job_id"] == job.job_id
    assert cutouts.services().store.get(job.job_id).event_pending is None


def test_a_partly_failed_put_events_clears_only_the_entries_that_went_out(cutouts):
    # Given two ended jobs (in a store nobody listens to), and a PutEvents answer that took the
    # first entry and refused the second
    store = JobStore(cutouts.ddb, cutouts.table)
    jobs = []
    for name in ("a", "b"):
        job = hand_built_job(job_id=f"job-{name}", key=f"uploads/{name}.jpg", status="SUBMITTED")
        assert store.claim(job, 1000.0, 60)
        assert store.mark_submitted(job.job_id, job.attempt, f"req-{name}", 1001.0)
        job.request_id = f"req-{name}"
        job.status = "SUBMITTED"
        assert store.mark_completed(job, 1002.0, f"cutouts/{name}.jpg.png")
        jobs.append(store.get(job.job_id))
    assert all(j.event_pending == "COMPLETED" for j in jobs)
    client = boto3.client("events", **CREDS)
    stub = Stubber(client)
    stub.add_response(
        "put_events",
        {
            "FailedEntryCount": 1,
            "Entries": [{"EventId": "11111111-2222"}, {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
        },
    )
    stub.activate()
    metrics = Counted()
    announcer = EventAnnouncer(
        client, store, metrics, input_prefix="uploads/", failure_prefix="failed/", clock=lambda: 1003.0
    )
    # When both are announced in one call
    sent = announcer.announce(jobs)
    # Then only the first is cleared; the second stays pending for the reconciler, and is counted
    assert sent == 1
    assert store.get("job-a").event_pending is None and store.get("job-b").event_pending == "COMPLETED"
    assert store.get("job-a").updated_at == 1002.0  # clearing is no news of the job: its place in the index stays
    assert metrics.counts == {c.METRIC_EVENTS_SENT: 1, c.METRIC_EVENTS_FAILED: 1}
    assert [j.job_id for j in store.pending_events("COMPLETED", 2000.0)] == ["job-b"]


def test_clearing_the_mark_of_an_earlier_end_leaves_a_later_end_pending(cutouts):
    # Given a job that failed, was reopened by the operator and failed again later
    store = JobStore(cutouts.ddb, cutouts.table)
    job = hand_built_job(status="SUBMITTED")
    assert store.claim(job, 1000.0, 60)
    first = store.get(job.job_id)
    assert store.mark_final(first, "FAILED", 1001.0, "model-failed", "no")
    failed_once = store.get(job.job_id)
    assert store.reopen(failed_once, 1002.0)
    assert store.get(job.job_id).event_pending is None  # the reopened job's old end is not announced
    again = store.get(job.job_id)
    assert store.claim(again, 1003.0, 60)
    assert store.mark_final(store.get(job.job_id), "FAILED", 1004.0, "model-failed", "no again")
    # When a late sender clears the mark of the first end
    cleared = store.mark_event_sent(failed_once, 1005.0)
    # Then the second end is still pending
    assert not cleared and store.get(job.job_id).event_pending == "FAILED"


def test_a_listener_that_raises_never_undoes_or_blocks_the_end(cutouts):
    # Given a store whose announcer raises
    store = JobStore(cutouts.ddb, cutouts.table)
    heard: list[str] = []

    def broken(job: Job) -> None:
        heard.append(job.job_id)
        raise RuntimeError("no network")

    store.on_announced = broken
    job = hand_built_job(status="SUBMITTED")
    assert store.claim(job, 1000.0, 60)
    # When the job ends
    ended = store.mark_final(store.get(job.job_id), "FAILED", 1001.0, "model-failed", "no")
    # Then the end is written, the listener was called once, and the end stays pending for the reconciler
    assert ended and heard == [job.job_id]
    assert (store.get(job.job_id).status, store.get(job.job_id).event_pending) == ("FAILED", "FAILED")


def test_a_superseded_end_is_not_announced(cutouts):
    # Given a job a newer upload of its key took over
    store = JobStore(cutouts.ddb, cutouts.table)
    job = hand_built_job(status="SUBMITTED")
    assert store.claim(job, 1000.0, 60)
    # When it ends SUPERSEDED
    assert store.mark_final(store.get(job.job_id), "SUPERSEDED", 1001.0, "superseded", "newer")
    # Then no event is pending: the newer version's job announces the key's outcome
    assert store.get(job.job_id).event_pending is None


def test_a_cutout_copied_from_an_identical_upload_says_reused_not_paid(cutouts):
    store = JobStore(cutouts.ddb, cutouts.table)
    job = hand_built_job(status="", request_id=None)
    assert store.mark_completed(job, 1000.0, "cutouts/pets/cat.jpg.png", from_cache=True)
    entry = cutout_created(store.get(job.job_id))
    assert (entry.detail["paid"], entry.detail["reused"], entry.detail["gateway_request_id"]) == (False, True, None)
    assert entry.detail["uploaded_at"] == "2026-11-30T22:35:00.950Z"


# --- the documented shapes ---------------------------------------------------------------------


def _as_delivered(entry: Any, event_id: str) -> dict[str, Any]:
    """The envelope EventBridge hands a target for one of our entries."""
    request = entry.to_request()
    return {
        "version": "0",
        "id": event_id,
        "detail-type": request["DetailType"],
        "source": request["Source"],
        "account": ACCOUNT,
        "time": request["Time"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": request["Resources"],
        "detail": json.loads(request["Detail"]),
    }


def test_cutout_created_matches_the_documented_example():
    example = load_event("eventbridge_cutout_created")
    assert _as_delivered(cutout_created(hand_built_job()), example["id"]) == example


def test_cutout_failed_matches_the_documented_example():
    example = load_event("eventbridge_cutout_failed")
    job = hand_built_job(
        status="FAILED", output_key=None, reason="model-failed", error="the model reported FAILED: no subject"
    )
    entry = cutout_failed(job, input_prefix="uploads/", failure_prefix="failed/")
    assert _as_delivered(entry, example["id"]) == example
    assert example["detail"]["failure"]["what_to_do"] == ADVICE["model-failed"]


def test_the_docs_show_the_examples_as_they_are():
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    for name in ("eventbridge_cutout_created", "eventbridge_cutout_failed"):
        assert json.dumps(load_event(name)["detail"], indent=2, ensure_ascii=False) in docs, name


def test_parked_and_budget_reached_events_carry_the_spend_figures():
    job = hand_built_job(status="PARKED", request_id=None, finished_at=None, output_key=None)
    parked = cutout_parked(
        job,
        reason="budget-reached",
        period="day",
        budget_usd=50.0,
        spent_usd=49.986,
        resumes_at=1796083200.0,
        parked_at=1796078101.5,
    )
    assert parked.detail_type == CUTOUT_PARKED
    assert parked.detail["parked"]["period"] == "day" and parked.detail["parked"]["resumes_at"] == (
        "2026-12-01T00:00:00.000Z"
    )
    assert (parked.detail["paid"], parked.detail["outputs"]) == (False, [])
    reached = budget_reached(period="day", period_start="2026-12-01", budget_usd=50.0, spent_usd=50.0, reached_at=1.0)
    assert reached.detail_type == BUDGET_REACHED
    assert reached.detail["event_key"] == "budget/day/2026-12-01"
    assert {k: reached.detail[k] for k in ("period", "budget_usd", "spent_usd")} == {
        "period": "day",
        "budget_usd": 50.0,
        "spent_usd": 50.0,
    }


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [("2024-05-01T12:00:00.000Z", 1714564800.0), (None, None), ("yesterday", None), (17, None)],
)
def test_an_uploads_event_time_is_read_from_its_s3_record_or_left_out(event_time, expected):
    from cutouts.notifications import source_from_s3_record

    record = json.loads(load_event("sqs_s3_object_created")["Records"][0]["body"])["Records"][0]
    record["eventTime"] = event_time
    assert source_from_s3_record(record).uploaded_at == expected


def test_put_events_sends_ten_entries_a_call_and_reports_each_outcome():
    client = boto3.client("events", **CREDS)
    stub = Stubber(client)
    stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(10)]})
    stub.add_client_error("put_events", "ThrottlingException", "slow down", 400)
    stub.activate()
    entries = [cutout_created(hand_built_job(job_id=f"j{i}")) for i in range(12)]
    results = put_events(client, entries)
    assert results[:10] == [None] * 10
    assert all(r is not None and "ThrottlingException" in r for r in results[10:]) and len(results) == 12
