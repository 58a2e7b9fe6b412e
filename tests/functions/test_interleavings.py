"""The newest version wins and every input ends as one thing, whatever interleaves.

Each test runs one actor's step in the middle of another's (inside a store or S3 call, through a
test double), the way concurrent Lambda invocations can, and checks the key ends with the newest
version's outcome and never with a cutout of the newest version beside a report.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from functions_kit import callback_event, cutout_png, status_doc, submitted, unique_image

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
V1, V2 = "0055AED6DCD90281E5", "0055AED6DCD90281E6"
KEY = "uploads/pets/cat.jpg"


def upload(cutouts, body: bytes, sequencer: str, key: str = KEY):
    from cutouts.notifications import source_from_s3_record

    return source_from_s3_record(json.loads(cutouts.notification(key, body, sequencer=sequencer))["Records"][0])


def submit(cutouts, source, now: float | None = None):
    from cutouts.submission import submit_source

    return submit_source(source, cutouts.services(), time.time() if now is None else now)


def settle(cutouts, job_id: str) -> str:
    from cutouts.completion import settle_job

    services = cutouts.services()
    job = services.store.get(job_id)
    return settle_job(job, services.gateway.status(job.request_id), services, time.time())


def cutout_owner(cutouts, key: str = "cutouts/pets/cat.jpg.png") -> str | None:
    try:
        return cutouts.s3.head_object(Bucket=cutouts.bucket, Key=key)["Metadata"]["job-id"]
    except cutouts.s3.exceptions.ClientError:
        return None


def during(monkeypatch: Any, owner: Any, name: str, other_actor: Any, *, after: bool = False) -> None:
    """Run ``other_actor`` once, inside the first call of ``owner.name`` (before it, or after it)."""
    real, done = getattr(owner, name), []

    def interleaved(*args: Any, **kwargs: Any) -> Any:
        if not done and not after:
            done.append(True)  # before running it: the other actor may call the same method
            other_actor()
        result = real(*args, **kwargs)
        if not done and after:
            done.append(True)
            other_actor()
        return result

    monkeypatch.setattr(owner, name, interleaved)


def test_an_older_versions_download_landing_late_never_replaces_the_newer_cutout(cutouts, monkeypatch):
    # Given v1 submitted and finished at the gateway
    v1, _, _ = submitted(cutouts, KEY)
    cutouts.gateway.complete(v1.request_id, cutout_png((10, 10)))
    v2_source = upload(cutouts, unique_image("v2"), V2)

    def v2_uploaded_and_finished() -> None:
        outcome = submit(cutouts, v2_source)
        cutouts.gateway.complete(outcome.detail, cutout_png((20, 20)))
        settle(cutouts, outcome.job_id)  # v1 holds the key's output lease: v2 must come back later

    # When v2 is uploaded and finished while v1's download is landing
    from cutouts import completion

    during(monkeypatch, completion, "fetch_media_to_s3", v2_uploaded_and_finished)
    assert settle(cutouts, v1.job_id) == "already-finished"
    # Then v1 ends SUPERSEDED and took its cutout back; v2's retry writes v2's cutout
    store = cutouts.services().store
    assert store.get(v1.job_id).status == "SUPERSEDED"
    assert cutout_owner(cutouts) is None
    assert settle(cutouts, v2_source.job_id) == "completed"
    assert cutout_owner(cutouts) == v2_source.job_id


def test_a_superseded_notice_lost_between_two_writes_still_keeps_the_old_version_out(cutouts, monkeypatch):
    # Given v1 submitted, and v2's submit crashing right after it recorded itself as the newest
    v1, _, _ = submitted(cutouts, KEY)
    cutouts.gateway.complete(v1.request_id, cutout_png())
    v2_source = upload(cutouts, unique_image("v2"), V2)
    from cutouts.job_store import JobStore

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("the function was stopped")

    with monkeypatch.context() as patch:
        patch.setattr(JobStore, "tell_superseded", crash)
        with pytest.raises(RuntimeError):
            submit(cutouts, v2_source)
    # When the redelivery goes through (it finds itself already named, and tells nobody) and v1's result lands
    assert submit(cutouts, v2_source).result == "submitted"
    assert cutouts.services().store.get(v1.job_id).superseded_by is None
    outcome = settle(cutouts, v1.job_id)
    # Then v1 still cannot write the key: the key record names v2
    assert outcome == "superseded" and cutout_owner(cutouts) is None
    assert cutouts.services().store.get(v1.job_id).status == "SUPERSEDED"


def test_the_reconciler_never_pays_to_resubmit_a_version_a_newer_upload_replaced(cutouts, monkeypatch):
    # Given v1 in doubt past its grace period, and v2 recorded as the key's newest (its notice to v1 lost)
    from cutouts.job_store import JobStore
    from cutouts.reconciliation import reconcile

    past = time.time() - 1000
    v1_source = upload(cutouts, unique_image("v1"), V1)
    store = cutouts.services().store
    v1 = v1_source.new_job()
    assert store.claim(v1, past, 120) and store.mark_in_doubt(v1.job_id, v1.attempt, past, "read timed out")
    assert store.note_newest(cutouts.bucket, KEY, V1.rjust(32, "0"), v1.job_id, past) is not None
    monkeypatch.setattr(JobStore, "tell_superseded", lambda *a, **k: True)
    assert submit(cutouts, upload(cutouts, unique_image("v2"), V2)).result == "submitted"
    # When the reconciler runs
    reconcile(cutouts.services(), time.time())
    # Then v1 is ended, not paid for again: only v2's POST went out
    assert store.get(v1.job_id).status == "SUPERSEDED"
    assert len(cutouts.gateway.posts()) == 1


def test_a_report_written_by_an_actor_that_lost_its_final_write_is_taken_back(cutouts, monkeypatch):
    # Given a job whose POST got no answer, and the reconciler about to fail it from that read
    from cutouts import outcomes
    from cutouts.outcomes import fail_job

    source = upload(cutouts, unique_image("a"), V1)
    store = cutouts.services().store
    job = source.new_job()
    assert store.note_newest(cutouts.bucket, KEY, V1.rjust(32, "0"), job.job_id, time.time()) is not None
    assert store.claim(job, time.time(), 120) and store.mark_in_doubt(job.job_id, job.attempt, time.time(), "x")
    stale = store.get(job.job_id)
    # When a genuine callback adopts the request right after the report is written
    during(
        monkeypatch,
        outcomes,
        "write_failure_report",
        lambda: store.adopt(job.job_id, job.attempt, "bria-rmbg-2-0-682_adopted", time.time()),
        after=True,
    )
    ended = fail_job(stale, cutouts.services(), time.time(), reason="timed-out", message="no result")
    # Then the failure did not happen, and its report is gone with it
    assert ended is False
    assert store.get(job.job_id).status == "SUBMITTED"
    assert cutouts.keys("failed/") == []


def test_a_stale_snapshot_failing_a_job_superseded_meanwhile_ends_it_superseded_without_a_report(cutouts, monkeypatch):
    # Given v1 submitted long ago, and the gateway reporting FAILED for it
    from cutouts.pixazo import PixazoGateway
    from cutouts.reconciliation import reconcile

    v1, _, _ = submitted(cutouts, KEY, now=time.time() - 1000)
    cutouts.gateway.set_status(v1.request_id, "FAILED", "no subject")
    v2_source = upload(cutouts, unique_image("v2"), V2)
    # When v2 is uploaded while the reconciler, holding its snapshot of v1, asks for v1's status
    during(monkeypatch, PixazoGateway, "status", lambda: submit(cutouts, v2_source))
    reconcile(cutouts.services(), time.time())
    # Then v1 ends SUPERSEDED and no report stands for the key
    assert cutouts.services().store.get(v1.job_id).status == "SUPERSEDED"
    assert cutouts.keys("failed/") == []


def test_a_cache_hit_of_an_older_version_never_removes_the_newer_versions_report(cutouts, monkeypatch):
    # Given a twin's cutout for some bytes, and v1 of the key carrying those same bytes
    same = unique_image("twin")
    twin = submit(cutouts, upload(cutouts, same, V1, key="uploads/twin.jpg"))
    cutouts.gateway.complete(twin.detail, cutout_png())
    assert settle(cutouts, twin.job_id) == "completed"
    v1_source = upload(cutouts, same, V1)
    v2: list[Any] = []
    # When v2 (a PDF) is uploaded and reported while v1 is checking the twin's cutout
    # (the first HEAD of v1's submit is its look at the twin's cutout)
    during(
        monkeypatch, cutouts.services().s3, "head_object", lambda: v2.append(submit(cutouts, upload(cutouts, PDF, V2)))
    )
    outcome = submit(cutouts, v1_source)
    # Then v1 is superseded, and v2's report stays with no cutout beside it
    assert outcome.result == "superseded" and v2[0].result == "failed"
    report = cutouts.report("failed/pets/cat.jpg.json")
    assert report["job_id"] == v2[0].job_id and report["reason"] == "unsupported-type"
    assert cutout_owner(cutouts) is None


def test_the_dead_letter_sweep_leaves_a_job_an_operator_retried_after_the_message_was_sent(cutouts):
    from cutouts.reconciliation import reconcile

    # Given a failed job whose message also sits in the dead-letter queue, then an operator retry
    job, _, _ = submitted(cutouts, KEY)
    store = cutouts.services().store
    assert store.mark_final(job, "FAILED", time.time(), "model-failed", "x")
    doc = {"Records": [json.loads(cutouts.notification(KEY, None))["Records"][0]]}
    doc["Records"][0]["s3"]["object"]["eTag"] = job.etag
    cutouts.sqs.send_message(QueueUrl=cutouts.dlq_url, MessageBody=json.dumps(doc))
    assert store.reopen(store.get(job.job_id), time.time() + 5)
    # When the sweep runs
    reconcile(cutouts.services(), time.time() + 6)
    # Then the retried job is left for its retry, and the stale message is gone
    assert store.get(job.job_id).status == "RETRY"
    assert cutouts.keys("failed/") == []
    attrs = cutouts.sqs.get_queue_attributes(QueueUrl=cutouts.dlq_url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessages"]) == 0


def test_a_late_failed_callback_of_the_first_run_cannot_fail_the_reopened_job(cutouts, lambda_context):
    from cutouts.handlers import webhook

    job, attempt, token = submitted(cutouts, KEY)
    store = cutouts.services().store
    assert store.mark_final(job, "FAILED", time.time(), "timed-out", "x")
    assert store.reopen(store.get(job.job_id), time.time())
    cutouts.gateway.set_status(job.request_id, "FAILED", "late")
    body = json.dumps(status_doc(job.request_id, "FAILED", error="late"))
    reply = webhook.handler(callback_event(job.job_id, attempt=attempt, token=token, body=body), lambda_context)
    assert reply["statusCode"] == 409
    assert store.get(job.job_id).status == "RETRY"


def test_a_redrive_of_a_version_that_is_no_longer_current_ends_it_superseded(cutouts):
    # Given v1 failed, v2 uploaded since, and an operator reopening v1 with a redrive of its message
    v1, _, _ = submitted(cutouts, KEY)
    store = cutouts.services().store
    assert store.mark_final(v1, "FAILED", time.time(), "model-failed", "x")
    assert submit(cutouts, upload(cutouts, unique_image("v2"), V2)).result == "submitted"
    assert store.reopen(store.get(v1.job_id), time.time())
    from cutouts.notifications import SourceObject

    redriven = SourceObject(cutouts.bucket, KEY, None, v1.etag, V1)
    # When the redriven message arrives
    assert submit(cutouts, redriven).result == "superseded"
    # Then v1 is ended now, rather than sitting in RETRY until it times out beside v2's cutout
    assert store.get(v1.job_id).status == "SUPERSEDED"


def test_when_the_newest_version_fails_its_report_says_the_cutout_beside_it_is_older(cutouts):
    v1, _, _ = submitted(cutouts, KEY)
    cutouts.gateway.complete(v1.request_id, cutout_png())
    assert settle(cutouts, v1.job_id) == "completed"
    assert submit(cutouts, upload(cutouts, PDF, V2)).result == "failed"
    report = cutouts.report("failed/pets/cat.jpg.json")
    assert report["earlier_cutout"] == "cutouts/pets/cat.jpg.png"
    assert "earlier upload" in report["message"]


V3 = "0055AED6DCD90281E7"


def test_an_unversioned_key_reverted_to_earlier_bytes_ends_with_those_bytes_cutout(cutouts):
    # Given an unversioned bucket (jobs keyed on the ETag) where A, then B, were uploaded and cut out
    a_bytes, b_bytes = unique_image("A"), unique_image("B")
    a1 = submit(cutouts, upload(cutouts, a_bytes, V1))
    cutouts.gateway.complete(a1.detail, cutout_png((10, 10)))
    assert settle(cutouts, a1.job_id) == "completed"
    b = submit(cutouts, upload(cutouts, b_bytes, V2))
    cutouts.gateway.complete(b.detail, cutout_png((20, 20)))
    assert settle(cutouts, b.job_id) == "completed"
    # When A's bytes are uploaded again (the same ETag, so the same job id as the first A)
    a2 = submit(cutouts, upload(cutouts, a_bytes, V3))
    # Then it is not dropped as a duplicate: A's job is reopened and submitted again
    assert a2.result == "submitted" and a2.job_id == a1.job_id
    cutouts.gateway.complete(a2.detail, cutout_png((30, 30)))
    assert settle(cutouts, a2.job_id) == "completed"
    # and the key ends with A's cutout
    assert cutout_owner(cutouts) == a1.job_id
    head = cutouts.s3.head_object(Bucket=cutouts.bucket, Key="cutouts/pets/cat.jpg.png")
    assert head["Metadata"]["request-id"] == a2.detail


def test_a_revert_while_both_versions_are_in_flight_leaves_the_reverted_bytes_cutout(cutouts):
    # Given A and then B in flight on an unversioned bucket (A was told B supersedes it)
    a_bytes = unique_image("A")
    a1 = submit(cutouts, upload(cutouts, a_bytes, V1))
    b = submit(cutouts, upload(cutouts, unique_image("B"), V2))
    # When A's bytes are uploaded again while both are still in flight
    assert submit(cutouts, upload(cutouts, a_bytes, V3)).result == "duplicate"
    # Then whichever finishes first, the key ends with A's cutout and B ends superseded
    cutouts.gateway.complete(b.detail, cutout_png((20, 20)))
    cutouts.gateway.complete(a1.detail, cutout_png((10, 10)))
    assert settle(cutouts, b.job_id) == "superseded"
    assert settle(cutouts, a1.job_id) == "completed"
    assert cutout_owner(cutouts) == a1.job_id
    assert cutouts.keys("failed/") == []


def test_a_late_event_of_the_first_upload_leaves_the_reverted_keys_job_alone(cutouts):
    # Given A -> B -> A on an unversioned bucket, the third upload's job (A's, by its ETag) in flight
    a_bytes = unique_image("A")
    first = upload(cutouts, a_bytes, V1)
    assert submit(cutouts, upload(cutouts, unique_image("B"), V2)).result == "submitted"
    third = submit(cutouts, upload(cutouts, a_bytes, V3))
    assert third.result == "submitted" and third.job_id == first.job_id
    # When the first upload's event arrives late (SQS keeps no order)
    late = submit(cutouts, first)
    # Then it changes nothing: A's job is still the key's, in flight, and completes with A's cutout
    assert late.result == "duplicate"
    assert cutouts.services().store.get(third.job_id).status == "SUBMITTED"
    cutouts.gateway.complete(third.detail, cutout_png())
    assert settle(cutouts, third.job_id) == "completed" and cutout_owner(cutouts) == third.job_id
