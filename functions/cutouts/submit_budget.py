"""How long one upload may take in the submit function, and so its batch size and time-out.

A record is started only if the invocation has time for the longest it may take; the records
that are not started go back to the queue at once (handlers/submit.py). The function's time-out
is sized so that a whole batch of records that each take that long still fits: handing back is
then the exception (AWS calls far slower than usual), not the rule, and no batch times out.

The longest a record may take:
- the gateway POST: its connect time-out (at most 3 s) plus its read time-out (httpTimeoutSeconds);
- reading and hashing the source: maxImageBytes at a pessimistic 10 MiB/s (an in-region S3 GET
  from a 256 MB function is several times faster; SHA-256 of 25 MiB takes ~0.2 s of its CPU);
- the DynamoDB and S3 calls around them (about ten, tens of milliseconds each), with room for retries.

With the defaults (10 s, 25 MiB): 3 + 10 + 2.5 + 3 = 18.5 s a record; a batch of 5: 92.5 s plus
the invocation's own overhead (reading the secrets on a cold start) = 100 s.
"""

from __future__ import annotations

import math

BATCH_SIZE = 5
GATEWAY_CONNECT_SECONDS = 3.0  # pixazo.PixazoGateway: connect time-out min(3 s, httpTimeoutSeconds)
SOURCE_READ_BYTES_PER_SECOND = 10 * 1024 * 1024
AWS_CALLS_SECONDS = 3.0
# Kept back at the end of an invocation: handing the unstarted records back and answering.
END_MARGIN_SECONDS = 2.0
# The invocation's own overhead: settings, clients and both secrets on a cold start.
INVOCATION_OVERHEAD_SECONDS = 5.0
LAMBDA_MAX_TIMEOUT_SECONDS = 900
# AWS's guidance for an SQS event source: the queue's visibility is six times the function's
# time-out, so a message is never visible again while an invocation may still be working on it.
VISIBILITY_PER_TIMEOUT = 6
BACKOFF_CAP_SECONDS = 900  # the longest back-off the submit function sets on its own (a Retry-After may be longer)


def record_seconds(http_timeout_seconds: float, max_image_bytes: int) -> float:
    """The longest one record may take, start to finish."""
    connect = min(GATEWAY_CONNECT_SECONDS, http_timeout_seconds)
    return connect + http_timeout_seconds + max_image_bytes / SOURCE_READ_BYTES_PER_SECOND + AWS_CALLS_SECONDS


def may_start_record(remaining_seconds: float, http_timeout_seconds: float, max_image_bytes: int) -> bool:
    """Is there time to finish one more record, and still answer, before the time-out?"""
    return remaining_seconds >= record_seconds(http_timeout_seconds, max_image_bytes) + END_MARGIN_SECONDS


def function_timeout_seconds(http_timeout_seconds: float, max_image_bytes: int) -> int:
    """A time-out that fits a whole batch of the longest records (at most Lambda's 900 s)."""
    needed = (
        BATCH_SIZE * record_seconds(http_timeout_seconds, max_image_bytes)
        + END_MARGIN_SECONDS
        + INVOCATION_OVERHEAD_SECONDS
    )
    return min(LAMBDA_MAX_TIMEOUT_SECONDS, math.ceil(needed))


def queue_visibility_seconds(http_timeout_seconds: float, max_image_bytes: int) -> int:
    """The upload queue's visibility time-out."""
    return VISIBILITY_PER_TIMEOUT * function_timeout_seconds(http_timeout_seconds, max_image_bytes)


def longest_backoff_seconds(retry_base_seconds: int, max_receives: int) -> int:
    """The longest a refused upload's message is hidden before its next delivery (short of a Retry-After)."""
    return int(min(BACKOFF_CAP_SECONDS, retry_base_seconds * 2 ** max(0, max_receives - 1)))
