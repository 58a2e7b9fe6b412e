"""CloudFormation custom resource: give the signing secret its first value (never a second one).

Create and Update fill the secret only if it has no current value (an Update can name a new,
empty secret if the secret was replaced); Delete does nothing (the secret is its own resource).
The answer goes to CloudFormation's presigned response URL, as every custom resource's must.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from cutouts.observability import logger
from cutouts.signing_key_seed import seed_signing_key

SECRET_ID_PROPERTY = "SecretId"  # noqa: S105 (a property name, not a secret)


def _secretsmanager() -> Any:
    import boto3

    return boto3.client("secretsmanager")


def put_response(url: str, body: bytes) -> None:
    """PUT to CloudFormation's presigned S3 URL (https only)."""
    if urlsplit(url).scheme != "https":
        raise ValueError("the response URL is not https")
    request = urllib.request.Request(  # noqa: S310 (checked: https)
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (checked: https)
        reply.read()


def respond(
    event: dict[str, Any],
    status: str,
    physical_id: str,
    reason: str = "",
    put: Callable[[str, bytes], None] = put_response,
) -> None:
    """The result, with no data: nothing secret ever goes back to CloudFormation."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or status,
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": True,
        }
    ).encode()
    put(event["ResponseURL"], body)


def handler(
    event: dict[str, Any],
    context: Any,
    secretsmanager: Any = None,
    put: Callable[[str, bytes], None] = put_response,
) -> None:
    secret_id = str(event.get("ResourceProperties", {}).get(SECRET_ID_PROPERTY, ""))
    physical_id = secret_id or str(event.get("PhysicalResourceId") or "signing-key-seed")
    try:
        if event["RequestType"] in ("Create", "Update"):
            wrote = seed_signing_key(secretsmanager or _secretsmanager(), secret_id, _token(event["RequestId"]))
            logger.info("signing key seed", request_type=event["RequestType"], wrote_first_value=wrote)
        respond(event, "SUCCESS", physical_id, put=put)
    except Exception as exc:
        logger.exception("signing key seed failed")
        respond(event, "FAILED", physical_id, f"{type(exc).__name__}: see the function's log", put=put)


def _token(request_id: str) -> str:
    """A ClientRequestToken (32-64 characters) from CloudFormation's request id (a UUID, 36)."""
    return request_id.ljust(32, "0")[:64]
