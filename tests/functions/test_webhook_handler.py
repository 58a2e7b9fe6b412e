"""The webhook function through real HTTP API payload v2 events."""

import json

import pytest
from cutouts_testkit import callback_event, cutout_png, image_bytes, new_request_id, status_doc, submitted


@pytest.fixture
def webhook(cutouts):
    from cutouts.handlers import webhook as module

    return module


def call(webhook, lambda_context, job_id, *, attempt="1", token=None, body=None):
    reply = webhook.handler(callback_event(job_id, attempt=attempt, token=token, body=body), lambda_context)
    return reply["statusCode"], json.loads(reply["body"])["message"]


def snapshot(cutouts):
    objects = cutouts.s3.list_objects_v2(Bucket=cutouts.bucket).get("Contents", [])
    return cutouts.all_items(), sorted((o["Key"], o["ETag"]) for o in objects)


def completed_body(request_id, url="https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/x/output.png"):
    return json.dumps(status_doc(request_id, "COMPLETED", [url]))


def test_missing_token_is_401_and_changes_nothing(webhook, cutouts, lambda_context):
    job, attempt, _ = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    before = snapshot(cutouts)
    assert call(webhook, lambda_context, job.job_id, token=None, body=completed_body(job.request_id))[0] == 401
    assert snapshot(cutouts) == before


def test_wrong_token_is_403_and_changes_nothing(webhook, cutouts, lambda_context):
    job, attempt, token = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    before = snapshot(cutouts)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert call(webhook, lambda_context, job.job_id, token=forged, body=completed_body(job.request_id))[0] == 403
    assert snapshot(cutouts) == before


def test_token_of_another_job_is_403_and_changes_nothing(webhook, cutouts, lambda_context):
    victim, _, _ = submitted(cutouts, "uploads/victim.jpg")
    attacker, _, attacker_token = submitted(cutouts, "uploads/attacker.jpg")
    cutouts.gateway.complete(victim.request_id, cutout_png())
    before = snapshot(cutouts)
    code, _ = call(webhook, lambda_context, victim.job_id, token=attacker_token, body=completed_body(victim.request_id))
    assert code == 403 and snapshot(cutouts) == before


def test_valid_token_with_another_jobs_request_id_is_409_and_changes_nothing(webhook, cutouts, lambda_context):
    # Given two jobs, and the caller holds the valid URL of the first
    mine, attempt, token = submitted(cutouts, "uploads/mine.jpg")
    other, _, _ = submitted(cutouts, "uploads/other.jpg")
    cutouts.gateway.complete(other.request_id, cutout_png())
    before = snapshot(cutouts)
    # When it reports the other job's request as this job's result
    code, _ = call(webhook, lambda_context, mine.job_id, token=token, body=completed_body(other.request_id))
    # Then it is refused and nothing changes
    assert code == 409 and snapshot(cutouts) == before


def test_callback_for_an_earlier_attempt_is_409(webhook, cutouts, lambda_context):
    job, _, _ = submitted(cutouts)
    token = cutouts.services().signer.token(job.job_id, 2)
    before = snapshot(cutouts)
    assert (
        call(webhook, lambda_context, job.job_id, attempt="2", token=token, body=completed_body(job.request_id))[0]
        == 409
    )
    assert snapshot(cutouts) == before


def test_unknown_job_is_404_and_changes_nothing(webhook, cutouts, lambda_context):
    job_id = "ab" * 16
    token = cutouts.services().signer.token(job_id, 1)
    before = snapshot(cutouts)
    assert call(webhook, lambda_context, job_id, token=token, body=completed_body(new_request_id()))[0] == 404
    assert snapshot(cutouts) == before


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "",
        None,
        json.dumps({"status": "COMPLETED"}),
        json.dumps({"request_id": "RID"}),
        json.dumps({"request_id": "RID", "status": "DONE"}),
        json.dumps(["RID", "COMPLETED"]),
        "x" * 70_000,
    ],
)
def test_malformed_body_is_400_and_changes_nothing(webhook, cutouts, lambda_context, body):
    job, attempt, token = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    if body:
        body = body.replace("RID", job.request_id)
    before = snapshot(cutouts)
    assert call(webhook, lambda_context, job.job_id, token=token, body=body)[0] == 400
    assert snapshot(cutouts) == before


@pytest.mark.parametrize("job_id", ["../../etc", "ABCDEF" * 6, "1"])
def test_malformed_job_id_is_refused(webhook, cutouts, lambda_context, job_id):
    before = snapshot(cutouts)
    assert call(webhook, lambda_context, job_id, token="t", body="{}")[0] in (400, 403, 404)
    assert snapshot(cutouts) == before


def test_confirmed_completion_writes_the_cutout_and_removes_a_stale_report(webhook, cutouts, lambda_context):
    # Given an old failure report for the key, a submitted job for a new version of it, and a
    # gateway that has finished
    cutouts.put("failed/pets/cat.jpg.json", b'{"reason": "old"}')
    job, attempt, token = submitted(cutouts, "uploads/pets/cat.jpg")
    png = cutout_png()
    cutouts.gateway.complete(job.request_id, png)
    # When the gateway calls back
    code, _ = call(webhook, lambda_context, job.job_id, token=token, body=completed_body(job.request_id))
    # Then the cutout is in place with its type and metadata, the job is done, the stale report is gone
    assert code == 200
    obj = cutouts.s3.get_object(Bucket=cutouts.bucket, Key="cutouts/pets/cat.jpg.png")
    assert obj["Body"].read() == png and obj["ContentType"] == "image/png"
    assert obj["Metadata"]["source-key"] == "uploads/pets/cat.jpg"
    assert obj["Metadata"]["request-id"] == job.request_id
    done = cutouts.services().store.get(job.job_id)
    assert (done.status, done.output_key) == ("COMPLETED", "cutouts/pets/cat.jpg.png")
    assert "failed/pets/cat.jpg.json" not in cutouts.keys("failed/")
    # the gateway was asked for the status with our key
    assert any(r.path.endswith(job.request_id) and r.method == "GET" for r in cutouts.gateway.requests)


def test_unicode_key_cutout_metadata_is_ascii_safe(webhook, cutouts, lambda_context):
    job, attempt, token = submitted(cutouts, "uploads/ünï cødé/猫 1+1.jpg")
    cutouts.gateway.complete(job.request_id, cutout_png())
    assert call(webhook, lambda_context, job.job_id, token=token, body=completed_body(job.request_id))[0] == 200
    assert cutouts.keys("cutouts/") == ["cutouts/ünï cødé/猫 1+1.jpg.png"]


def test_media_url_in_the_body_is_ignored_for_the_status_endpoints(webhook, cutouts, lambda_context):
    # Given a callback body naming a URL on another host
    job, attempt, token = submitted(cutouts)
    png = cutout_png()
    cutouts.gateway.complete(job.request_id, png)
    cutouts.evil.files["/evil.png"] = cutouts.gateway.files[next(iter(cutouts.gateway.files))]
    body = completed_body(job.request_id, cutouts.evil.base_url + "/evil.png")
    # When it is delivered
    assert call(webhook, lambda_context, job.job_id, token=token, body=body)[0] == 200
    # Then the result came from the status endpoint's URL, and the other host was never contacted
    assert cutouts.evil.count() == 0
    assert cutouts.s3.get_object(Bucket=cutouts.bucket, Key="cutouts/pets/cat.jpg.png")["Body"].read() == png


def test_completed_with_a_media_url_off_the_allow_list_fails_the_job_and_fetches_nothing(
    webhook, cutouts, lambda_context
):
    job, attempt, token = submitted(cutouts)
    from cutouts_testkit import Reply

    cutouts.gateway.statuses[job.request_id] = Reply(
        200, status_doc(job.request_id, "COMPLETED", [cutouts.evil.base_url + "/x.png"])
    )
    assert call(webhook, lambda_context, job.job_id, token=token, body=completed_body(job.request_id))[0] == 200
    assert cutouts.evil.count() == 0 and cutouts.keys("cutouts/") == []
    assert cutouts.report("failed/pets/cat.jpg.json")["reason"] == "bad-output"


def test_repeated_callback_is_200_and_changes_nothing(webhook, cutouts, lambda_context):
    job, attempt, token = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    assert call(webhook, lambda_context, job.job_id, token=token, body=completed_body(job.request_id))[0] == 200
    before, requests = snapshot(cutouts), cutouts.gateway.count()
    assert call(webhook, lambda_context, job.job_id, token=token, body=completed_body(job.request_id))[0] == 200
    assert snapshot(cutouts) == before and cutouts.gateway.count() == requests


def test_failed_status_writes_a_report(webhook, cutouts, lambda_context):
    job, attempt, token = submitted(cutouts)
    cutouts.gateway.set_status(job.request_id, "FAILED", "could not segment")
    body = json.dumps(status_doc(job.request_id, "FAILED", error="could not segment"))
    assert call(webhook, lambda_context, job.job_id, token=token, body=body)[0] == 200
    report = cutouts.report("failed/pets/cat.jpg.json")
    assert (report["reason"], report["gateway_status"], report["gateway_error"]) == (
        "model-failed",
        "FAILED",
        "could not segment",
    )
    assert report["request_id"] == job.request_id
    assert cutouts.services().store.get(job.job_id).status == "FAILED"


def test_error_status_marks_the_job_for_resubmission(webhook, cutouts, lambda_context):
    job, attempt, token = submitted(cutouts)
    cutouts.gateway.set_status(job.request_id, "ERROR", "Description of the error")
    body = json.dumps(status_doc(job.request_id, "ERROR", error="Description of the error"))
    assert call(webhook, lambda_context, job.job_id, token=token, body=body)[0] == 200
    assert cutouts.services().store.get(job.job_id).status == "RESUBMIT"
    assert cutouts.keys("failed/") == [] and len(cutouts.gateway.posts()) == 1


def test_body_claiming_completion_while_the_gateway_says_processing_changes_nothing(webhook, cutouts, lambda_context):
    job, attempt, token = submitted(cutouts)
    cutouts.gateway.set_status(job.request_id, "PROCESSING")
    before = snapshot(cutouts)
    code, _ = call(webhook, lambda_context, job.job_id, token=token, body=completed_body(job.request_id))
    assert code == 202 and snapshot(cutouts) == before


def test_result_of_a_version_overwritten_in_flight_never_replaces_the_newer_cutout(webhook, cutouts, lambda_context):
    # Given version 1 of a key submitted, then version 2 uploaded and submitted (a later sequencer)
    import json as _json
    import time

    from cutouts.submission import source_from_s3_record, submit_source

    old, _, old_token = submitted(cutouts, "uploads/pets/dog.jpg")
    event = cutouts.notification("uploads/pets/dog.jpg", image_bytes("PNG"), sequencer="0055AED6DCD90281F9")
    newer = _json.loads(event)
    outcome = submit_source(source_from_s3_record(newer["Records"][0]), cutouts.services(), time.time())
    assert outcome.result == "submitted"
    # When the old version's result arrives (the gateway finished it too)
    cutouts.gateway.complete(old.request_id, cutout_png())
    code, _ = call(webhook, lambda_context, old.job_id, token=old_token, body=completed_body(old.request_id))
    # Then the old job ends SUPERSEDED and writes nothing to the output key the newer version owns
    assert code == 200
    assert cutouts.services().store.get(old.job_id).status == "SUPERSEDED"
    assert "cutouts/pets/dog.jpg.png" not in cutouts.keys("cutouts/")


def test_callback_racing_the_submitters_own_write_still_completes_the_job(webhook, cutouts, lambda_context):
    # Given a job whose callback arrives while it still looks unsubmitted to the webhook, and the
    # submit function records the request id between the webhook's read and its adoption
    job, _, token = submitted(cutouts, "uploads/pets/fast.jpg")
    store = cutouts.services().store
    from cutouts import job_store

    real_get = job_store.JobStore.get
    calls = {"n": 0}

    def first_read_sees_no_request(self, job_id):
        found = real_get(self, job_id)
        calls["n"] += 1
        if calls["n"] == 1 and found is not None:
            found.request_id, found.status = None, "SUBMITTING"
        return found

    cutouts.gateway.complete(job.request_id, cutout_png())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(job_store.JobStore, "get", first_read_sees_no_request)
        # When the callback arrives
        code, message = call(webhook, lambda_context, job.job_id, token=token, body=completed_body(job.request_id))
    # Then it is not lost: the job completes with the request the submitter recorded
    assert (code, message) == (200, "completed")
    assert store.get(job.job_id).status == "COMPLETED"
