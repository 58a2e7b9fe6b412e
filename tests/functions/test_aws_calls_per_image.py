"""The AWS calls one image costs on the common path are the documented figure, and no more.

The figure lives in ONE place, ``bench/aws_calls.py``; docs/cost.md embeds its table. A change
that adds (or removes) a call on the common path fails here until that table says so.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.client
import pytest
from functions_kit import callback_event, cutout_png, status_doc, unique_image

from bench import aws_calls

ROOT = Path(__file__).resolve().parents[2]


class Calls:
    """Every AWS API call any botocore client makes (ours, Powertools' secrets client), by name."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def take(self) -> dict[str, int]:
        taken, self.counts = dict(self.counts), Counter()
        return taken


@pytest.fixture
def calls(monkeypatch) -> Calls:
    seen = Calls()
    real = botocore.client.BaseClient._make_api_call

    def counting(client: Any, operation: str, params: Any) -> Any:
        seen.counts[f"{client.meta.service_model.service_name}.{operation}"] += 1
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return seen


def one_image(cutouts: Any, calls: Calls, lambda_context: Any, key: str) -> tuple[dict[str, int], dict[str, int]]:
    """Upload -> submit handler on its SQS event -> gateway done -> webhook on its callback."""
    from cutouts.handlers import submit, webhook

    event = cutouts.sqs_event([cutouts.notification(key, unique_image(key))])
    calls.take()  # the test's own upload and queue calls are not the handlers'
    reply = submit.handler(event, lambda_context)
    submit_calls = calls.take()
    assert reply == {"batchItemFailures": []}
    post = cutouts.gateway.posts()[-1]
    query = parse_qs(urlsplit(post.headers["X-Webhook-URL"]).query)
    job_id = urlsplit(post.headers["X-Webhook-URL"]).path.rsplit("/", 1)[-1]
    job = cutouts.services().store.get(job_id)
    request_id = job.request_id
    url = cutouts.gateway.complete(request_id, cutout_png())
    calls.take()
    body = json.dumps(status_doc(request_id, "COMPLETED", [url]))
    answer = webhook.handler(
        callback_event(job_id, attempt=query["attempt"][0], token=query["token"][0], body=body), lambda_context
    )
    webhook_calls = calls.take()
    assert answer["statusCode"] == 200, answer
    assert cutouts.services().store.get(job_id).status == "COMPLETED"
    return submit_calls, webhook_calls


def test_one_image_makes_exactly_the_documented_aws_calls(cutouts, calls, lambda_context):
    # Given the stack's versioned bucket (S3 events carry versionId) and a warm environment (one
    # image already through: clients made, secrets cached)
    cutouts.s3.put_bucket_versioning(Bucket=cutouts.bucket, VersioningConfiguration={"Status": "Enabled"})
    first_submit, first_webhook = one_image(cutouts, calls, lambda_context, "uploads/warm/first.jpg")
    # When a new image goes through the submit and webhook handlers
    submit_calls, webhook_calls = one_image(cutouts, calls, lambda_context, "uploads/pets/cat.jpg")
    # Then each handler made exactly the calls bench/aws_calls.py documents, no more, no fewer
    assert submit_calls == aws_calls.SUBMIT, "update bench/aws_calls.py SUBMIT and docs/cost.md if this is intended"
    assert webhook_calls == aws_calls.WEBHOOK, "update bench/aws_calls.py WEBHOOK and docs/cost.md if intended"
    # and the secrets are read once per environment, not per image
    cold_only = Counter(first_submit) + Counter(first_webhook) - Counter(submit_calls) - Counter(webhook_calls)
    assert dict(cold_only) == aws_calls.PER_ENVIRONMENT


def test_cost_doc_embeds_the_calls_table():
    # Given the documented calls per image
    table = aws_calls.markdown_table()
    # When the cost page is read / Then it shows that exact table (python -m bench.aws_calls prints it)
    assert table in (ROOT / "docs" / "cost.md").read_text()
    # and the README's summary counts the same calls
    ours = sum(aws_calls.handlers_total().values())
    everything = ours + sum(aws_calls.ON_OUR_BEHALF.values())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"{ours} AWS calls per image by our functions, {everything} with those AWS makes for us" in readme


def test_calls_are_grouped_by_billed_kind():
    # Given the handlers' calls / When grouped by kind / Then reads, writes and S3 requests add up
    kinds = aws_calls.by_kind(aws_calls.handlers_total())
    assert kinds == {
        "S3 GET": 2,
        "S3 PUT": 1,
        "S3 COPY": 1,
        "S3 DELETE": 1,
        "DynamoDB reads": 4,
        "DynamoDB writes": 11,
        "EventBridge": 1,
    }


def test_an_idle_reconciler_pass_makes_exactly_the_documented_calls(cutouts, calls, lambda_context):
    # Given a warm reconciler (one pass already made: clients, secrets) and nothing to do
    from events_kit import load_event

    from cutouts.handlers import reconcile

    reconcile.handler(load_event("eventbridge_scheduled"), lambda_context)
    calls.take()
    # When it runs its scheduled pass
    reconcile.handler(load_event("eventbridge_scheduled"), lambda_context)
    # Then it made the calls bench/aws_calls.py documents (they price its fixed monthly cost)
    assert calls.take() == aws_calls.RECONCILE_IDLE_PASS
