"""The render dead-letter queue: the reconciler turns what ended there into reports the user sees."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from events_kit import load_event
from functions_kit import image_bytes, unique_image

from cutouts.render_requests import PREPARE, RENDER, RenderRequest, parse_request

PROFILES = {
    "profiles": {
        "default": {"outputs": [{"name": "cutout", "format": "png"}]},
        "shop": {
            "match": "shop/",
            "outputs": [
                {"name": "cutout", "format": "png"},
                {"name": "web", "format": "webp", "maxSize": 64},
                {"name": "mask", "format": "png", "mask": True},
            ],
        },
    }
}


@pytest.fixture
def rendering(cutouts: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> dict[str, str]:
    """The render queue, its dead-letter queue (named to the reconciler) and a `shop` profile."""
    from cutouts import runtime

    queues = {
        "queue": cutouts.sqs.create_queue(QueueName="cutouts-render")["QueueUrl"],
        "dlq": cutouts.sqs.create_queue(QueueName="cutouts-render-dlq")["QueueUrl"],
    }
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(PROFILES))
    monkeypatch.setenv("CUTOUTS_RENDER_QUEUE_URL", queues["queue"])
    monkeypatch.setenv("CUTOUTS_RENDER_DLQ_URL", queues["dlq"])
    monkeypatch.setenv("CUTOUTS_PROFILES_PATH", str(path))
    runtime.reset()
    yield queues
    runtime.reset()


@pytest.fixture
def reconcile(cutouts: Any, rendering: dict[str, str], lambda_context: Any) -> Any:
    from cutouts.handlers import reconcile as module

    return lambda: module.handler(load_event("eventbridge_scheduled"), lambda_context)


def _dead_letter(cutouts: Any, rendering: dict[str, str], body: str) -> None:
    cutouts.sqs.send_message(QueueUrl=rendering["dlq"], MessageBody=body)


def _left_on(cutouts: Any, queue_url: str) -> int:
    attrs = cutouts.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _sent_to_prepare(cutouts: Any, rendering: dict[str, str], key: str) -> str:
    """Submit an upload that must be prepared; return the prepare request it put on the render queue."""
    from cutouts.notifications import source_from_s3_record
    from cutouts.submission import submit_source

    body = json.loads(cutouts.notification(key, image_bytes("PNG", (40, 30), mode="RGBA")))
    outcome = submit_source(source_from_s3_record(body["Records"][0]), cutouts.services(), time.time())
    assert outcome.result == "deferred"
    (message,) = cutouts.sqs.receive_message(QueueUrl=rendering["queue"], MaxNumberOfMessages=10)["Messages"]
    cutouts.sqs.delete_message(QueueUrl=rendering["queue"], ReceiptHandle=message["ReceiptHandle"])
    return str(message["Body"])


def _completed_with_one_output(cutouts: Any, key: str) -> Any:
    """A `shop` job the gateway finished: its master kept, only its `cutout` output written."""
    from cutouts.keys import cutout_metadata
    from cutouts.notifications import source_from_s3_record
    from cutouts.submission import submit_source

    services = cutouts.services()
    body = json.loads(cutouts.notification(key, unique_image(key)))
    outcome = submit_source(source_from_s3_record(body["Records"][0]), services, time.time())
    assert outcome.result == "submitted"
    job = services.store.get(outcome.job_id)
    cutout = key.replace("uploads/", "cutouts/", 1) + ".png"
    metadata = cutout_metadata(job.key, job.version, job.job_id, job.request_id)
    cutouts.s3.put_object(Bucket=cutouts.bucket, Key=cutout, Body=b"png", Metadata=metadata)
    assert services.store.mark_completed(job, time.time(), cutout)
    return services.store.get(job.job_id)


def test_a_dead_lettered_prepare_request_ends_as_the_uploads_failure_report(cutouts, rendering, reconcile):
    # Given an upload sent to be prepared whose prepare request failed on every delivery
    _dead_letter(cutouts, rendering, _sent_to_prepare(cutouts, rendering, "uploads/shop/phone.png"))
    # When the schedule fires
    counts = reconcile()
    # Then the upload has a report and a FAILED job, nothing was paid, and the message is gone
    assert counts.get("render-dead-lettered") == 1
    report = cutouts.report("failed/shop/phone.png.json")
    assert report["reason"] == "prepare-failed" and report["source_key"] == "uploads/shop/phone.png"
    assert "render function's logs" in report["what_to_do"]
    (job,) = [i for i in cutouts.all_items() if i["pk"]["S"].startswith("job#")]
    assert job["status"]["S"] == "FAILED"
    assert cutouts.gateway.posts() == [] and _left_on(cutouts, rendering["dlq"]) == 0
    # And a second pass reports nothing again
    assert reconcile().get("render-dead-lettered", 0) == 0


def test_a_dead_lettered_render_request_reports_each_output_that_is_missing(cutouts, rendering, reconcile):
    # Given a completed `shop` job whose render request dead-lettered after only `cutout` was written
    job = _completed_with_one_output(cutouts, "uploads/shop/shoe.jpg")
    _dead_letter(cutouts, rendering, RenderRequest(RENDER, job.bucket, job.key, job.job_id, "shop").to_body())
    # When the schedule fires
    counts = reconcile()
    # Then each missing output has its own report under the output's report key; the written one has none
    assert counts.get("render-dead-lettered") == 2
    assert cutouts.keys("failed/") == ["failed/shop/shoe.jpg.mask.json", "failed/shop/shoe.jpg.web.json"]
    for name in ("mask", "web"):
        report = cutouts.report(f"failed/shop/shoe.jpg.{name}.json")
        assert report["reason"] == "render-dead-lettered" and report["job_id"] == job.job_id
        assert f'output "{name}"' in report["message"] and "rerender" in report["what_to_do"]
    # And the job stays COMPLETED (its paid result is kept), and the message is gone
    assert cutouts.services().store.get(job.job_id).status == "COMPLETED"
    assert _left_on(cutouts, rendering["dlq"]) == 0 and len(cutouts.gateway.posts()) == 1


@pytest.mark.parametrize("kind", [PREPARE, RENDER])
def test_a_dead_letter_of_a_superseded_key_writes_nothing(cutouts, rendering, reconcile, kind):
    # Given a dead-lettered request whose key has since been uploaded again
    if kind == PREPARE:
        body = _sent_to_prepare(cutouts, rendering, "uploads/shop/old.png")
        request = json.loads(body)
    else:
        job = _completed_with_one_output(cutouts, "uploads/shop/old.jpg")
        body = RenderRequest(RENDER, job.bucket, job.key, job.job_id, "shop").to_body()
        request = json.loads(body)
    _dead_letter(cutouts, rendering, body)
    store = cutouts.services().store
    assert store.note_newest(request["bucket"], request["key"], "9" * 40, "a-newer-job", time.time())
    # When the schedule fires
    counts = reconcile()
    # Then it is taken off the queue as stale: no report, no job failed
    assert counts.get("render-dead-letters-stale") == 1 and counts.get("render-dead-lettered", 0) == 0
    assert cutouts.keys("failed/") == [] and _left_on(cutouts, rendering["dlq"]) == 0
    assert all(i["status"]["S"] != "FAILED" for i in cutouts.all_items() if i["pk"]["S"].startswith("job#"))


def test_a_malformed_dead_letter_is_deleted_and_the_pass_goes_on(cutouts, rendering, reconcile):
    # Given garbage and a stranger's message on the render dead-letter queue, beside a real dead letter
    _dead_letter(cutouts, rendering, "not json")
    _dead_letter(cutouts, rendering, json.dumps({"kind": "render", "bucket": "b"}))
    _dead_letter(cutouts, rendering, _sent_to_prepare(cutouts, rendering, "uploads/shop/real.png"))
    # When the schedule fires
    counts = reconcile()
    # Then the garbage is dropped and counted, the real one is reported, and the queue is empty
    assert counts.get("render-dead-letters-dropped") == 2 and counts.get("render-dead-lettered") == 1
    assert cutouts.keys("failed/") == ["failed/shop/real.png.json"]
    assert _left_on(cutouts, rendering["dlq"]) == 0


def test_a_dead_letter_the_sweep_cannot_handle_stays_for_the_next_pass(cutouts, rendering, reconcile, monkeypatch):
    # Given a dead-lettered prepare request, and a job table that fails for a moment
    _dead_letter(cutouts, rendering, _sent_to_prepare(cutouts, rendering, "uploads/shop/later.png"))
    from cutouts import render_dead_letters

    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("DynamoDB is having a moment")

    monkeypatch.setattr(render_dead_letters, "_report_prepare", broken)
    # When the schedule fires
    counts = reconcile()
    # Then nothing is reported, and the message is kept (not deleted) for a later pass
    assert counts.get("render-dead-lettered", 0) == 0 and cutouts.keys("failed/") == []
    assert _left_on(cutouts, rendering["dlq"]) == 1


def test_a_dead_lettered_prepare_of_an_upload_completed_from_its_own_alpha_reports_its_missing_outputs(
    cutouts, rendering, reconcile
):
    # Given an upload already cut out: completed from its own alpha, then its rendering died on every delivery
    job = _completed_with_one_output(cutouts, "uploads/shop/sticker.jpg")
    body = RenderRequest(PREPARE, job.bucket, job.key, job.job_id, "shop", job.version_id, job.etag).to_body()
    _dead_letter(cutouts, rendering, body)
    # When the schedule fires
    counts = reconcile()
    # Then it is reported like a render request: one report per missing output, the job stays COMPLETED
    assert counts.get("render-dead-lettered") == 2
    assert cutouts.keys("failed/") == ["failed/shop/sticker.jpg.mask.json", "failed/shop/sticker.jpg.web.json"]
    assert cutouts.services().store.get(job.job_id).status == "COMPLETED"


def test_a_redelivered_prepare_of_a_cut_out_upload_renders_the_outputs_an_earlier_delivery_did_not(
    cutouts, rendering, monkeypatch
):
    import io

    from PIL import Image

    from cutouts import derived_outputs

    # Given an upload that is already cut out (transparent border, opaque subject) sent to be prepared
    picture = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    picture.paste((200, 30, 30, 255), (15, 10, 45, 30))
    data = io.BytesIO()
    picture.save(data, "PNG")
    from cutouts.notifications import source_from_s3_record
    from cutouts.submission import submit_source

    key = "uploads/shop/sticker.png"
    body = json.loads(cutouts.notification(key, data.getvalue()))
    assert (
        submit_source(source_from_s3_record(body["Records"][0]), cutouts.services(), time.time()).result == "deferred"
    )
    (message,) = cutouts.sqs.receive_message(QueueUrl=rendering["queue"], MaxNumberOfMessages=10)["Messages"]
    request = parse_request(message["Body"])
    # And a first delivery that completed the job from its own alpha, then died before rendering
    real_render = derived_outputs.render_job

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the function timed out")

    monkeypatch.setattr(derived_outputs, "render_job", dies)
    with pytest.raises(RuntimeError):
        derived_outputs.prepare_upload(request, cutouts.services(), time.time())
    assert not [k for k in cutouts.keys("cutouts/") if k.startswith("cutouts/shop/sticker.png.")]
    # When the request is delivered again
    monkeypatch.setattr(derived_outputs, "render_job", real_render)
    derived_outputs.prepare_upload(request, cutouts.services(), time.time())
    # Then every output of the profile is written, and nothing was paid
    assert set(cutouts.keys("cutouts/")) >= {
        "cutouts/shop/sticker.png.png",
        "cutouts/shop/sticker.png.web.webp",
        "cutouts/shop/sticker.png.mask.png",
    }
    assert cutouts.gateway.posts() == []
