"""The webhook function through real HTTP API payload v2 events."""

import base64
import copy
import io
import json
import time

import pytest
from functions_kit import callback_event, cutout_png, image_bytes, new_request_id, status_doc, submitted


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
    from functions_kit import Reply

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

    from cutouts.notifications import source_from_s3_record
    from cutouts.submission import submit_source

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


# --- malformed and unauthenticated requests: always a 4xx, never an exception ------------------

DEEP = "[" * 200_000 + "]" * 200_000  # RecursionError for a parser, 400 KB for the size cap
DEEP_UNDER_CAP = "[" * 30_000 + "]" * 30_000  # within the 64 KiB cap, still far too deep
NOT_UTF8 = base64.b64encode(b"\xff\xfe\xfa" * 20).decode()


def invoke(webhook, lambda_context, event):
    reply = webhook.handler(event, lambda_context)
    return reply["statusCode"], json.loads(reply["body"])["message"]


def genuine_event(cutouts, body=None):
    job, attempt, token = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    return job, callback_event(job.job_id, attempt=attempt, token=token, body=body or completed_body(job.request_id))


def forge(event):
    token = event["queryStringParameters"]["token"]
    event["queryStringParameters"]["token"] = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    return event


def as_base64(event, raw: str):
    event["body"], event["isBase64Encoded"] = raw, True
    return event


HOSTILE_BODIES = [
    pytest.param(lambda e: as_base64(e, NOT_UTF8), id="base64-not-utf8"),
    pytest.param(lambda e: e.update(body=DEEP), id="nested-200k-deep"),
    pytest.param(lambda e: e.update(body=DEEP_UNDER_CAP), id="nested-30k-deep"),
    pytest.param(lambda e: as_base64(e, "%%% not base64 %%%"), id="invalid-base64"),
    pytest.param(lambda e: e.update(body="\ud800"), id="lone-surrogate"),
    pytest.param(lambda e: e.update(body={"request_id": "x"}), id="body-not-text"),
]


@pytest.mark.parametrize("make_body", HOSTILE_BODIES)
def test_unauthenticated_hostile_body_is_403_without_being_read(webhook, cutouts, lambda_context, make_body):
    # Given a callback with a forged token and a body made to crash a parser
    job, event = genuine_event(cutouts)
    make_body(forge(event))
    before = snapshot(cutouts)
    # When it is delivered
    code, message = invoke(webhook, lambda_context, event)
    # Then it is refused on its token alone, and nothing changes
    assert (code, message) == (403, "invalid token")
    assert snapshot(cutouts) == before


@pytest.mark.parametrize(
    "make_body",
    [
        *HOSTILE_BODIES,
        pytest.param(
            lambda e: e.update(body='{"request_id": "r", "status": "COMPLETED", "error": 1' + "0" * 5000 + "}"),
            id="5000-digit-number",
        ),
    ],
)
def test_authenticated_hostile_body_is_400_and_changes_nothing(webhook, cutouts, lambda_context, make_body):
    # Given a genuine callback URL with a body made to crash a parser
    job, event = genuine_event(cutouts)
    make_body(event)
    before = snapshot(cutouts)
    # When it is delivered
    code, _ = invoke(webhook, lambda_context, event)
    # Then it is a client error, and nothing changes
    assert code == 400 and snapshot(cutouts) == before


def test_genuine_base64_encoded_body_is_accepted(webhook, cutouts, lambda_context):
    # Given a genuine callback whose body API Gateway chose to base64-encode
    job, event = genuine_event(cutouts)
    as_base64(event, base64.b64encode(event["body"].encode()).decode())
    # When it is delivered
    # Then the job completes as with a plain body
    assert invoke(webhook, lambda_context, event) == (200, "completed")


@pytest.mark.parametrize(
    ("attempt", "token_attempt"),
    [
        ("²", None),  # str.isdigit() is true, int() fails
        ("١", 1),  # Arabic-Indic one: int() accepts it, our URLs never carry it
        ("1" * 5000, None),  # int() refuses more than 4300 digits
        ("1" * 7, None),
        ("0", 0),
        ("01", 1),
        ("-1", None),
        (" 1", 1),
        ("1\n", 1),
        ("1,1", None),  # ?attempt=1&attempt=1 reaches us comma-joined
    ],
    ids=lambda v: ascii(v)[:16] if isinstance(v, str) else str(v),
)
def test_malformed_attempt_is_400_and_changes_nothing(webhook, cutouts, lambda_context, attempt, token_attempt):
    # Given a job and a token that would be genuine for the attempt the text might be read as
    job, _, token = submitted(cutouts)
    if token_attempt is not None:
        token = cutouts.services().signer.token(job.job_id, token_attempt)
    before = snapshot(cutouts)
    # When the callback names the attempt in any form our URLs never use
    code, message = call(
        webhook, lambda_context, job.job_id, attempt=attempt, token=token, body=completed_body(job.request_id)
    )
    # Then it is refused as malformed, and nothing changes
    assert (code, message) == (400, "malformed callback URL")
    assert snapshot(cutouts) == before


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "%0a", "\x00"])
def test_job_id_with_trailing_characters_is_400(webhook, cutouts, lambda_context, suffix):
    job, attempt, token = submitted(cutouts)
    before = snapshot(cutouts)
    event = callback_event(job.job_id, attempt=attempt, token=token, body=completed_body(job.request_id))
    event["pathParameters"]["job_id"] += suffix
    assert invoke(webhook, lambda_context, event) == (400, "malformed callback URL")
    assert snapshot(cutouts) == before


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda e: e["requestContext"].pop("http"), 400, id="no-requestContext.http"),
        pytest.param(lambda e: e.pop("requestContext"), 400, id="no-requestContext"),
        pytest.param(lambda e: e["requestContext"].update(http="POST"), 400, id="http-not-an-object"),
        pytest.param(lambda e: e["requestContext"]["http"].update(method="GET"), 405, id="GET"),
        pytest.param(lambda e: e["requestContext"]["http"].update(method="post"), 405, id="lower-case-post"),
        pytest.param(lambda e: e.pop("pathParameters"), 401, id="no-pathParameters"),
        pytest.param(lambda e: e.update(pathParameters={"job_id": 7}), 400, id="job-id-not-text"),
        pytest.param(lambda e: e.pop("queryStringParameters"), 401, id="no-queryStringParameters"),
        pytest.param(lambda e: e.update(queryStringParameters=["attempt", "1"]), 401, id="query-not-an-object"),
        pytest.param(lambda e: e["queryStringParameters"].update(attempt=1), 400, id="attempt-not-text"),
        pytest.param(lambda e: e["queryStringParameters"].update(token="a+b/c="), 400, id="token-not-url-safe"),
        pytest.param(lambda e: e["queryStringParameters"].update(token="é" * 43), 400, id="token-not-ascii"),
        pytest.param(lambda e: e["queryStringParameters"].update(token="A" * 129), 400, id="token-too-long"),
    ],
)
def test_odd_event_shapes_are_4xx_and_change_nothing(webhook, cutouts, lambda_context, mutate, expected):
    # Given a genuine callback, bent out of the shape API Gateway gives it
    job, event = genuine_event(cutouts)
    mutate(event)
    before = snapshot(cutouts)
    # When it is delivered
    code, _ = invoke(webhook, lambda_context, event)
    # Then the answer is the client error expected, and nothing changes
    assert code == expected and snapshot(cutouts) == before


def test_repeated_query_parameters_are_refused(webhook, cutouts, lambda_context):
    # Given a genuine URL whose parameters were sent twice (payload v2 joins them with a comma)
    job, event = genuine_event(cutouts)
    query = event["queryStringParameters"]
    query["token"] = f"{query['token']},{query['token']}"
    # When it is delivered
    # Then it is malformed, not a crash and not a match
    assert invoke(webhook, lambda_context, event) == (400, "malformed callback URL")


def test_request_id_is_logged_only_for_an_authenticated_callback(webhook, cutouts, lambda_context):
    from cutouts.observability import logger

    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    try:
        # Given a forged callback whose body names a request id, then the genuine one
        job, event = genuine_event(cutouts)
        forged = forge(copy.deepcopy(event))
        forged["body"] = json.dumps(status_doc("claimed-by-a-stranger", "COMPLETED", ["https://x/y.png"]))
        # When both are delivered
        assert invoke(webhook, lambda_context, forged)[0] == 403
        assert invoke(webhook, lambda_context, event)[0] == 200
    finally:
        logger.registered_handler.setStream(previous)
    # Then the stranger's claim never reached the logs, and the genuine request is correlated
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    assert "claimed-by-a-stranger" not in buffer.getvalue()
    assert any(line.get("request_id") == job.request_id for line in lines)


def _bad_values(job_id, token):
    """Per field, values API Gateway would never send for a genuine callback of ours."""
    return {
        ("requestContext",): [None, "x", [], {}],
        ("requestContext", "http"): [None, "POST", [], {}],
        ("requestContext", "http", "method"): [None, "", "GET", "PUT", 5, ["POST"]],
        ("pathParameters",): [None, {}, [], "x"],
        ("pathParameters", "job_id"): [None, "", 7, job_id + "\n", job_id.upper(), "../" + job_id, job_id * 2],
        ("queryStringParameters",): [None, {}, [], "attempt=1"],
        ("queryStringParameters", "attempt"): [
            None,
            "",
            "2",  # well-formed, not the attempt the token was made for
            "0",
            "²",
            "١",
            "1" * 5000,
            "1,1",
            "-1",
            " 1",
            1,
            1.0,
            [],
            "9" * 7,
            "1\n",
        ],
        ("queryStringParameters", "token"): [
            None,
            "",
            token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # well-formed, forged
            token + "," + token,
            "é" * 43,
            token[:-1] + "=",
            token * 4,
            42,
            [token],
            token + "\n",
        ],
        ("body",): [None, "", "{", DEEP, DEEP_UNDER_CAP, "x" * 70_000, "[]", "null", '"s"', "\ud800", 3, {"a": 1}],
        ("isBase64Encoded",): [True],  # the genuine body is not base64
    }


def _set(event, path, value):
    doc = event
    for name in path[:-1]:
        if not isinstance(doc.get(name), dict):
            doc[name] = {}
        doc = doc[name]
    doc[path[-1]] = value


def test_any_malformed_request_gets_a_4xx_never_an_exception(webhook, cutouts, lambda_context):
    # Given a genuine callback, and a seeded stream of ways to break one to four of its fields
    import random

    job, attempt, token = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    bad = _bad_values(job.job_id, token)
    extra_bodies = [NOT_UTF8, "%%%", base64.b64encode(DEEP.encode()).decode()]
    rng = random.Random(20261130)
    before = snapshot(cutouts)
    seen = set()
    for _ in range(400):
        event = callback_event(job.job_id, attempt=attempt, token=token, body=completed_body(job.request_id))
        for path in rng.sample(sorted(bad), rng.randint(1, 4)):
            _set(event, path, rng.choice(bad[path]))
            if path == ("isBase64Encoded",) and rng.random() < 0.5:
                event["body"] = rng.choice(extra_bodies)
        # When it is delivered
        reply = webhook.handler(event, lambda_context)
        # Then the answer is a client error with a JSON message
        assert 400 <= reply["statusCode"] < 500, (event, reply)
        assert isinstance(json.loads(reply["body"])["message"], str)
        seen.add(reply["statusCode"])
    # and nothing changed, and the requests met more than one kind of refusal
    assert snapshot(cutouts) == before
    assert {400, 401, 403, 405} <= seen


# --- the invocation's time budget -----------------------------------------------------------------


def with_remaining(lambda_context, seconds):
    lambda_context.get_remaining_time_in_millis = lambda: int(seconds * 1000)
    return lambda_context


def test_download_slower_than_the_invocations_time_left_is_a_503_and_a_later_callback_completes(
    webhook, cutouts, lambda_context
):
    # Given a completed job whose result the media host serves after 1.5 s (within the 2 s HTTP
    # time-out), and an invocation with 0.5 s left beyond the safety margin
    job, attempt, token = submitted(cutouts)
    url = cutouts.gateway.complete(job.request_id, cutout_png())
    path = url[len(cutouts.gateway.base_url) :]
    cutouts.gateway.files[path].delay = 1.5
    short = with_remaining(copy.copy(lambda_context), webhook.SAFETY_MARGIN_SECONDS + 0.5)
    started = time.monotonic()
    # When the gateway calls back
    code, _ = call(webhook, short, job.job_id, token=token, body=completed_body(job.request_id))
    # Then the webhook answers 503 before its deadline, so the gateway retries, and nothing is stored
    assert code == 503
    assert time.monotonic() - started < 1.4
    assert cutouts.keys("cutouts/") == [] and cutouts.services().store.get(job.job_id).status != "COMPLETED"
    # and the retry, with time enough, completes the job
    code, message = call(webhook, lambda_context, job.job_id, token=token, body=completed_body(job.request_id))
    assert (code, message) == (200, "completed")


def test_invocation_without_time_for_the_gateway_answers_503_without_calling_it(webhook, cutouts, lambda_context):
    # Given a genuine callback arriving with less time left than the safety margin
    job, attempt, token = submitted(cutouts)
    cutouts.gateway.complete(job.request_id, cutout_png())
    calls, before = cutouts.gateway.count(), snapshot(cutouts)
    short = with_remaining(copy.copy(lambda_context), webhook.SAFETY_MARGIN_SECONDS - 0.5)
    # When it is delivered
    code, _ = call(webhook, short, job.job_id, token=token, body=completed_body(job.request_id))
    # Then it is a 503 (retry later), the gateway is not asked, and nothing changes
    assert code == 503 and cutouts.gateway.count() == calls and snapshot(cutouts) == before
