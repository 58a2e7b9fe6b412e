"""A rendering job's Cutout Created: sent once its outputs exist, naming them, once; late rather than never."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import test_job_events as kit
from functions_kit import cutout_png, submitted
from test_job_events import callback, completed_body, failing_events_client

from cutouts.derived_outputs import render_job
from cutouts.render_events import RENDER_VISIBILITY_SECONDS, render_retry_window
from cutouts.render_requests import parse_request

# The shop profile renders (three outputs); everything else is today's one PNG cutout.
PROFILES = {
    "profiles": {
        "default": {"outputs": [{"name": "cutout", "format": "png"}]},
        "shop": {
            "match": "shop/",
            "outputs": [
                {"name": "cutout", "format": "png"},
                {"name": "web", "format": "webp", "maxSize": 8},
                {"name": "mask", "format": "png", "mask": True},
            ],
        },
    }
}
bus, webhook = kit.bus, kit.webhook  # the completion-event tests' fixtures: the default bus's queue, the webhook

SHOP_OUTPUTS = [
    {"key": "cutouts/shop/cat.jpg.png", "profile": "shop", "output": "cutout"},
    {"key": "cutouts/shop/cat.jpg.web.webp", "profile": "shop", "output": "web"},
    {"key": "cutouts/shop/cat.jpg.mask.png", "profile": "shop", "output": "mask"},
]


@pytest.fixture
def rendering(cutouts, tmp_path, monkeypatch):
    """The functions with the profiles above and a render queue; returns a reader of that queue."""
    from cutouts import runtime

    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(PROFILES))
    queue_url = cutouts.sqs.create_queue(QueueName="cutouts-render")["QueueUrl"]
    monkeypatch.setenv("CUTOUTS_PROFILES_PATH", str(path))
    monkeypatch.setenv("CUTOUTS_RENDER_QUEUE_URL", queue_url)
    runtime.settings.cache_clear()
    runtime.profiles.cache_clear()

    def requests() -> list[Any]:
        got = []
        while True:
            reply = cutouts.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not reply.get("Messages"):
                return got
            for message in reply["Messages"]:
                got.append(parse_request(message["Body"]))
                cutouts.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    yield requests
    runtime.profiles.cache_clear()


def completed_shop_job(cutouts, webhook, lambda_context) -> Any:
    """A shop upload whose result came back: the webhook wrote its master and asked for rendering."""
    job, _, token = submitted(cutouts, "uploads/shop/cat.jpg")
    cutouts.gateway.complete(job.request_id, cutout_png((24, 24)))
    assert callback(webhook, lambda_context, job, token, completed_body(job)) == 200
    return cutouts.services().store.get(job.job_id)


def test_a_rendered_jobs_cutout_created_comes_after_its_outputs_names_them_and_comes_once(
    webhook, cutouts, bus, rendering, lambda_context
):
    # Given a shop job the webhook completed with its master
    job = completed_shop_job(cutouts, webhook, lambda_context)
    assert job.status == "COMPLETED" and job.output_key == "work/masters/shop/cat.jpg.png"
    # Then no event went out yet (no output exists), and its end is still marked pending
    assert bus() == [] and cutouts.keys("cutouts/") == []
    assert job.event_pending == "COMPLETED"
    # And a reconciler pass meanwhile (the render not done yet) sends nothing either
    from cutouts.reconciliation import reconcile

    assert not reconcile(cutouts.services(), time.time() + 120).get("events-sent")
    assert bus() == []
    # When the render request is delivered, and delivered again
    (request,) = rendering()
    first = render_job(request, cutouts.services(), time.time())
    again = render_job(request, cutouts.services(), time.time())
    # Then both wrote the outputs, and exactly one Cutout Created names each of them (not the master)
    assert len(first.written) == 3 and len(again.written) == 3
    (event,) = bus()
    assert event["detail-type"] == "Cutout Created"
    detail = event["detail"]
    assert detail["outputs"] == SHOP_OUTPUTS and detail["failed_outputs"] == []
    assert all(o["key"] in cutouts.keys("cutouts/") for o in detail["outputs"])
    assert f"arn:aws:s3:::{cutouts.bucket}/work/masters/shop/cat.jpg.png" not in event["resources"]
    assert detail["event_key"] == f"{job.job_id}/{job.attempt}/COMPLETED" and detail["paid"] is True
    assert cutouts.services().store.get(job.job_id).event_pending is None
    # And a rerender of the announced job sends nothing either
    render_job(request._replace(rerender=True), cutouts.services(), time.time())
    assert bus() == []


def test_an_output_that_fails_is_listed_with_its_report(webhook, cutouts, bus, rendering, lambda_context, monkeypatch):
    import cutouts.rendering as images

    real = images.render_profile

    def no_mask(master: bytes, profile: Any, max_pixels: int) -> Any:
        for spec, result in real(master, profile, max_pixels):
            yield spec, (images.RenderError("render-failed", "injected") if spec.name == "mask" else result)

    monkeypatch.setattr(images, "render_profile", no_mask)
    # Given a completed shop job whose mask cannot be rendered
    completed_shop_job(cutouts, webhook, lambda_context)
    (request,) = rendering()
    # When it is rendered
    render_job(request, cutouts.services(), time.time())
    # Then its one event lists the two outputs written, and the mask with its report
    (event,) = bus()
    assert event["detail"]["outputs"] == SHOP_OUTPUTS[:2]
    assert event["detail"]["failed_outputs"] == [{"output": "mask", "report_key": "failed/shop/cat.jpg.mask.json"}]
    assert cutouts.report("failed/shop/cat.jpg.mask.json")["reason"] == "render-failed"


def test_an_eventbridge_failure_never_fails_the_render_and_the_reconciler_sends_it(
    webhook, cutouts, bus, rendering, lambda_context, monkeypatch
):
    from cutouts import runtime
    from cutouts.reconciliation import reconcile

    # Given a completed shop job, and EventBridge failing while it is rendered
    job = completed_shop_job(cutouts, webhook, lambda_context)
    (request,) = rendering()
    failing, _ = failing_events_client(times=2)
    real = runtime._clients()["events"]
    monkeypatch.setitem(runtime._clients(), "events", failing)
    # When it is rendered
    result = render_job(request, cutouts.services(), time.time())
    # Then the outputs are written, nothing was sent, and the end stays pending
    assert len(result.written) == 3 and bus() == []
    assert cutouts.services().store.get(job.job_id).event_pending == "COMPLETED"
    # When EventBridge is back and the reconciler passes (its outputs all stand: no need to wait)
    monkeypatch.setitem(runtime._clients(), "events", real)
    counts = reconcile(cutouts.services(), time.time() + 120)
    # Then the one event goes out, naming the outputs
    assert counts.get("events-sent") == 1
    (event,) = bus()
    assert event["detail"]["outputs"] == SHOP_OUTPUTS
    assert cutouts.services().store.get(job.job_id).event_pending is None


def test_the_reconciler_announces_a_deferred_end_whose_render_never_came(
    webhook, cutouts, bus, rendering, lambda_context
):
    from cutouts.reconciliation import reconcile

    # Given a completed shop job whose render died after writing one output (then dead-lettered)
    job = completed_shop_job(cutouts, webhook, lambda_context)
    rendering()  # the request is lost
    cutouts.s3.put_object(
        Bucket=cutouts.bucket, Key="cutouts/shop/cat.jpg.png", Body=cutout_png(), Metadata={"job-id": job.job_id}
    )
    # And an output left by another job (an older upload's) under its key
    cutouts.s3.put_object(
        Bucket=cutouts.bucket, Key="cutouts/shop/cat.jpg.web.webp", Body=b"old", Metadata={"job-id": "older"}
    )
    services = cutouts.services()
    window = render_retry_window(services.settings)
    # When the reconciler passes within the render queue's retry window
    assert not reconcile(services, time.time() + 120).get("events-sent")
    assert bus() == []
    # And once it has passed
    counts = reconcile(cutouts.services(), time.time() + window + 60)
    # Then the end is announced anyway, with the output that exists and the others without reports
    assert counts.get("events-sent") == 1
    (event,) = bus()
    assert event["detail"]["outputs"] == SHOP_OUTPUTS[:1]
    assert event["detail"]["failed_outputs"] == [
        {"output": "web", "report_key": None},
        {"output": "mask", "report_key": None},
    ]
    assert cutouts.services().store.get(job.job_id).event_pending is None


def test_a_render_a_newer_upload_took_over_lets_the_older_end_go_unannounced(
    webhook, cutouts, bus, rendering, lambda_context
):
    from cutouts.reconciliation import reconcile

    # Given a completed shop job, and a newer upload of its key seen before it was rendered
    job = completed_shop_job(cutouts, webhook, lambda_context)
    (request,) = rendering()
    services = cutouts.services()
    assert services.store.record_latest(cutouts.bucket, job.key, "FFFFFFFFFFFFFFFFFF", "newer-job", time.time())
    # When its render request arrives
    result = render_job(request, services, time.time())
    # Then nothing is written or announced, now or by a late reconciler pass: the newer job announces the key
    assert result.skipped and result.written == () and cutouts.keys("cutouts/") == []
    assert services.store.get(job.job_id).event_pending is None
    reconcile(cutouts.services(), time.time() + render_retry_window(services.settings) + 60)
    assert bus() == []


def test_a_plain_profile_job_is_announced_at_its_end_as_before(webhook, cutouts, bus, rendering, lambda_context):
    # Given profiles exist, and an upload outside shop/ (today's one PNG cutout)
    job, _, token = submitted(cutouts, "uploads/pets/dog.jpg")
    cutouts.gateway.complete(job.request_id, cutout_png())
    # When the gateway calls back
    assert callback(webhook, lambda_context, job, token, completed_body(job)) == 200
    # Then its event went out at once, naming the cutout, and nothing was asked of the render function
    (event,) = bus()
    assert event["detail"]["outputs"] == [{"key": "cutouts/pets/dog.jpg.png", "profile": None, "output": None}]
    assert rendering() == []


def test_the_fallback_waits_the_render_queues_whole_retry_window(cutouts):
    # The queue's visibility time-out (infra/rendering.py: six render time-outs) times maxReceives
    from cutouts import runtime

    pytest.importorskip("aws_cdk")
    from infra.rendering import RENDER_TIMEOUT

    assert 6 * RENDER_TIMEOUT.to_seconds() == RENDER_VISIBILITY_SECONDS
    settings = runtime.settings()
    assert render_retry_window(settings) == RENDER_VISIBILITY_SECONDS * settings.max_receives


class NoReportReading:
    """The reconciler's S3 as its role allows: outputs readable, failure reports write-only (HEAD: 403)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def head_object(self, **params: Any) -> Any:
        from botocore.exceptions import ClientError

        if params["Key"].startswith("failed/"):
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
        return self._s3.head_object(**params)


def test_the_late_announcement_lists_outputs_even_where_reports_cannot_be_read(
    webhook, cutouts, rendering, lambda_context
):
    from dataclasses import replace

    from cutouts.render_events import existing_outputs

    # Given a completed shop job with one output written and a report for another
    job = completed_shop_job(cutouts, webhook, lambda_context)
    cutouts.s3.put_object(
        Bucket=cutouts.bucket, Key="cutouts/shop/cat.jpg.png", Body=cutout_png(), Metadata={"job-id": job.job_id}
    )
    cutouts.s3.put_object(Bucket=cutouts.bucket, Key="failed/shop/cat.jpg.mask.json", Body=b"{}")
    services = cutouts.services()
    # When its outputs are listed by a function that may read reports, and by one that may not
    readable = existing_outputs(job, services)
    unreadable = existing_outputs(job, replace(services, s3=NoReportReading(cutouts.s3)))
    # Then both list the output written; the report is named where it can be seen, else null
    assert [o.output for o in readable[0]] == [o.output for o in unreadable[0]] == ["cutout"]
    assert [tuple(f) for f in readable[1]] == [("web", None), ("mask", "failed/shop/cat.jpg.mask.json")]
    assert [tuple(f) for f in unreadable[1]] == [("web", None), ("mask", None)]
