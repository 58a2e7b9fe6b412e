"""AWS calls per image on the common path: the ONE place the documented figure lives.

The common path is a new image in a warm environment (secrets cached), accepted by the gateway
on the first POST, called back once with COMPLETED. Each call pays for a promise (docs/guarantees):
the key record (newest version wins), the source read (bytes checked before paying), the content
query (de-duplication), the claim before the POST and the write after it (never paid twice), the
job read in the webhook (the callback's ``request_id`` check).

Read by: ``tests/functions/test_aws_calls_per_image.py`` (drives one image through the handlers
and fails when the calls differ from this table), ``bench/perimage.py`` (checks the bench's own
count against it), ``bench/cost.py`` and ``bench/scale.py`` (price it) and ``docs/cost.md``
(its table is :func:`markdown_table`, which a test compares; regenerate with
``python -m bench.aws_calls``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

# Calls our handlers make, by botocore "service.Operation", per image.
SUBMIT: dict[str, int] = {
    # the key record (newest version wins); the key's versions today (the loop guard); the job's claim
    # before the POST; the job marked SUBMITTED
    "dynamodb.UpdateItem": 4,
    # the spend guard: the price reserved against the day's budget, once for this attempt
    "dynamodb.TransactWriteItems": 1,
    # the content claim (one payer for identical bytes in flight); the request id bound to the job
    "dynamodb.PutItem": 2,
    "dynamodb.GetItem": 1,  # the key's latest job (a re-delivery or a newer version is told apart)
    # the upload's first bytes (a ranged GET: its profile metadata and whether it must be normalised
    # first: EXIF orientation, format, bit depth); then the source read, checked and hashed before paying
    "s3.GetObject": 2,
    "dynamodb.Query": 1,  # the content index: identical bytes reuse a cutout (de-duplication)
}
WEBHOOK: dict[str, int] = {
    "dynamodb.GetItem": 1,  # the job, to check the callback's request_id (consistent read)
    # the key's output lease taken and released (one writer of a key's outputs); the job COMPLETED;
    # its completion event's pending mark cleared once the event is on the bus
    "dynamodb.UpdateItem": 4,
    "events.PutEvents": 1,  # the Cutout Created event on the default bus (docs/events.md)
    "s3.PutObject": 1,  # the cutout (one part or less: one PUT)
    "s3.CopyObject": 1,  # the cutout kept as the key's master (server-side), so `rerender` never pays again
    "s3.DeleteObject": 1,  # a stale failure report of the key removed (free; a no-op when there is none)
    "dynamodb.Query": 1,  # the content index: jobs waiting on the same bytes are handed the cutout
}
# Calls AWS or the gateway make on our behalf, per image, billed to the account.
ON_OUR_BEHALF: dict[str, int] = {
    "sqs.SendMessage": 1,  # the S3 event notification into the upload queue
    "sqs.ReceiveMessage": 1,  # the event source mapping's poll (a batch of 1: the worst case)
    "sqs.DeleteMessage": 1,  # the event source mapping deletes what the batch succeeded on
    "s3.GetObject": 1,  # the gateway fetching the presigned URL
}
# Per warm execution environment, not per image: each secret is read once per cache lifetime.
PER_ENVIRONMENT: dict[str, int] = {"secretsmanager.GetSecretValue": 2}  # the gateway key, the signing keys
# One reconciler pass with nothing to do (it runs every minute whatever the traffic): its fixed cost.
RECONCILE_IDLE_PASS: dict[str, int] = {
    # the status index, once per open status (SUBMITTING ... WAITING, PARKED); the pending-events
    # index, once per announced end (COMPLETED, FAILED); the count of parked jobs (the spend guard)
    "dynamodb.Query": 10,
    # the spend guard: the budgets recorded for the CLI, the day's and month's spend (for the metric),
    # read again before parked jobs are resumed within what is left
    "dynamodb.GetItem": 5,
    "sqs.ReceiveMessage": 1,  # the dead-letter queue swept into failure reports (short poll)
}
# HTTP calls to the gateway and its media host, per image (not AWS, not billed by AWS).
GATEWAY: dict[str, int] = {"submit POST": 1, "status GET": 1, "media GET": 1}

KINDS: dict[str, str] = {
    "s3.GetObject": "S3 GET",
    "s3.HeadObject": "S3 HEAD",
    "s3.PutObject": "S3 PUT",
    "s3.CopyObject": "S3 COPY",
    "s3.DeleteObject": "S3 DELETE",
    "s3.CreateMultipartUpload": "S3 PUT",
    "s3.UploadPart": "S3 PUT",
    "s3.CompleteMultipartUpload": "S3 PUT",
    "s3.ListObjectsV2": "S3 LIST",
    "dynamodb.GetItem": "DynamoDB reads",
    "dynamodb.Query": "DynamoDB reads",
    "dynamodb.Scan": "DynamoDB reads",
    "dynamodb.PutItem": "DynamoDB writes",
    "dynamodb.UpdateItem": "DynamoDB writes",
    "dynamodb.DeleteItem": "DynamoDB writes",
    "dynamodb.TransactWriteItems": "DynamoDB writes",
    "sqs.SendMessage": "SQS",
    "sqs.ReceiveMessage": "SQS",
    "sqs.DeleteMessage": "SQS",
    "sqs.ChangeMessageVisibility": "SQS",
    "sqs.GetQueueUrl": "SQS",
    "secretsmanager.GetSecretValue": "Secrets Manager",
    "events.PutEvents": "EventBridge",
}
KIND_ORDER: tuple[str, ...] = ("S3 GET", "S3 HEAD", "S3 PUT", "S3 COPY", "S3 DELETE", "S3 LIST")
KIND_ORDER += ("DynamoDB reads", "DynamoDB writes", "SQS", "EventBridge", "Secrets Manager")


def handlers_total() -> dict[str, int]:
    """Our handlers' calls per image (submit + webhook)."""
    return dict(Counter(SUBMIT) + Counter(WEBHOOK))


def by_kind(calls: Mapping[str, int]) -> dict[str, int]:
    """Calls grouped by what AWS bills them as; an operation with no kind is its own kind."""
    kinds: Counter[str] = Counter()
    for name, count in calls.items():
        kinds[KINDS.get(name, name)] += count
    return {k: kinds[k] for k in (*KIND_ORDER, *sorted(set(kinds) - set(KIND_ORDER))) if kinds.get(k)}


def markdown_table() -> str:
    """The docs' table of calls per image by kind (docs/cost.md embeds it; a test compares)."""
    submit, webhook, behalf = by_kind(SUBMIT), by_kind(WEBHOOK), by_kind(ON_OUR_BEHALF)
    ours = by_kind(handlers_total())
    everything = by_kind(Counter(handlers_total()) + Counter(ON_OUR_BEHALF))
    rows = ["| kind | submit | webhook | AWS on our behalf | per image |", "|---|---|---|---|---|"]
    for kind in everything:
        rows.append(
            f"| {kind} | {submit.get(kind, 0)} | {webhook.get(kind, 0)} | {behalf.get(kind, 0)} | {everything[kind]} |"
        )
    rows.append(
        f"| **total** | {sum(submit.values())} | {sum(webhook.values())} | {sum(behalf.values())} | "
        f"**{sum(everything.values())}** (ours {sum(ours.values())}) |"
    )
    secrets = sum(PER_ENVIRONMENT.values())
    rows.append(
        f"| Secrets Manager | per warm environment, not per image: {secrets} reads per cache lifetime | | | 0 |"
    )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
