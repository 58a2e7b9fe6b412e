"""The callback signing key's first value: written once, when the secret has none, never again.

CloudFormation's GenerateSecretString writes a new value whenever the generator's settings change
or the secret is replaced, over a hand-rotated ``{current, previous}``, and every outstanding
callback URL would stop verifying. So the secret is created without a value and this fills it
the first time only: a secret that has a current value, whoever wrote it, is left as it is.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from botocore.exceptions import ClientError

from cutouts.callback_token import SIGNING_ROLES

KEY_BYTES = 32  # 64 hex characters, like the generator this replaces
CURRENT = SIGNING_ROLES[0]  # the role that signs


def new_signing_document() -> str:
    return json.dumps({CURRENT: secrets.token_hex(KEY_BYTES)})


def has_current_value(secretsmanager: Any, secret_id: str) -> bool:
    stages = secretsmanager.describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {}
    return any("AWSCURRENT" in labels for labels in stages.values())


def seed_signing_key(secretsmanager: Any, secret_id: str, request_token: str) -> bool:
    """Give the secret its first value unless it has one; True if this call wrote it.

    ``request_token`` (32-64 characters, e.g. CloudFormation's request id) makes a retried
    request write the same version instead of a second one.
    """
    if has_current_value(secretsmanager, secret_id):
        return False
    try:
        secretsmanager.put_secret_value(
            SecretId=secret_id, SecretString=new_signing_document(), ClientRequestToken=request_token
        )
    except ClientError as exc:
        # The same token with another value: a retry after our own write succeeded. Keep that one.
        if exc.response.get("Error", {}).get("Code") == "ResourceExistsException":
            return False
        raise
    return True
