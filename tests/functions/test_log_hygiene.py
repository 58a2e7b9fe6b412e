"""Logs and metrics must never hold the gateway key, the signing secret, a callback token or a presigned URL."""

import io
import json
from urllib.parse import parse_qs, urlsplit

from events_kit import load_event
from functions_kit import (
    API_KEY,
    SIGNING_KEY,
    Reply,
    callback_event,
    cutout_png,
    image_bytes,
    new_request_id,
    status_doc,
)


def test_logs_never_contain_secrets_tokens_or_presigned_urls(cutouts, lambda_context, capsys):
    from cutouts.handlers import reconcile, submit, webhook
    from cutouts.observability import logger

    buffer = io.StringIO()
    previous, level = logger.registered_handler.setStream(buffer), logger.log_level
    logger.setLevel("DEBUG")  # see everything the functions could log
    try:
        # Given a run through every function: accepted, throttled and refused submissions,
        cutouts.gateway.fetch_image_url = True
        cutouts.gateway.submit_replies += [
            Reply(202, {"request_id": new_request_id(), "status": "QUEUED"}),
            Reply(429, {"error": "Too Many Requests", "message": f"slow down {API_KEY[:4]}"}, {"Retry-After": "5"}),
            Reply(402, {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."}),
        ]
        event = cutouts.sqs_event(
            [cutouts.notification(f"uploads/log {n}.jpg", image_bytes("JPEG", (8 + n, 8))) for n in range(3)]
        )
        submit.handler(event, lambda_context)
        first = cutouts.gateway.posts()[0]
        webhook_url = first.headers["X-Webhook-URL"]
        query = parse_qs(urlsplit(webhook_url).query)
        job_id = urlsplit(webhook_url).path.rsplit("/", 1)[1]
        # a genuine callback and a forged one
        store = cutouts.services().store
        request_id = store.get(job_id).request_id
        cutouts.gateway.complete(request_id, cutout_png())
        body = json.dumps(status_doc(request_id, "COMPLETED", ["https://x/y.png"]))
        webhook.handler(
            callback_event(job_id, attempt="1", token="forged" + query["token"][0][6:], body=body), lambda_context
        )
        webhook.handler(callback_event(job_id, attempt="1", token=query["token"][0], body=body), lambda_context)
        # and a reconcile pass
        reconcile.handler(load_event("eventbridge_scheduled"), lambda_context)
    finally:
        logger.registered_handler.setStream(previous)
        logger.setLevel(level)
    # When everything written is read back
    written = buffer.getvalue() + capsys.readouterr().out
    # Then the functions did log
    assert '"submit"' in written and '"callback"' in written and "reconcile pass" in written
    # but none of the secrets
    assert API_KEY not in written
    assert SIGNING_KEY not in written
    assert query["token"][0] not in written
    assert "X-Amz-Signature" not in written and "X-Amz-Credential" not in written
    assert first.json()["image_url"] not in written
