"""Reading the gateway key: which failures the user must fix, and which pass by themselves.

Only two answers mean the key will not be there on the next try either: the secret has no
value (it, or its current version, does not exist; it is scheduled for deletion; it is empty or
holds no string), or this function may not read it (IAM, or the KMS key that encrypts it). Those
end jobs as ``gateway-key-missing``. Everything else (a throttle, Secrets Manager's or KMS's
own errors, a network error, a time-out) is transient: the message goes back to the queue.
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import ClientError

# Secrets Manager error codes that only the user can change.
NO_VALUE_CODES = frozenset(
    {
        "ResourceNotFoundException",  # no such secret, or no AWSCURRENT value (created, never filled)
        "InvalidRequestException",  # the secret is scheduled for deletion
    }
)
DENIED_CODES = frozenset(
    {
        "AccessDeniedException",  # the role may not call GetSecretValue on it
        "DecryptionFailure",  # the role may not use the secret's KMS key, or the key is disabled
    }
)


class GatewayKeyMissing(Exception):
    """The secret has no usable value, or we may not read it: permanent until the user acts."""


class GatewayKeyUnavailable(Exception):
    """Reading the secret failed this time (throttle, service error, network): try again later."""


def classify_read_error(exc: BaseException) -> GatewayKeyMissing | GatewayKeyUnavailable:
    """The AWS error behind ``exc`` decides; Powertools wraps it in GetParameterError.

    Powertools raises its GetParameterError inside its ``except`` block without ``from``, so the
    ClientError is the wrapper's ``__context__`` (``__cause__`` is checked too, for ``raise from``).
    """
    error: BaseException | None = exc
    for _ in range(5):  # a short chain; never follow a cycle
        if error is None or isinstance(error, ClientError):
            break
        error = error.__cause__ or error.__context__
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in NO_VALUE_CODES:
            return GatewayKeyMissing(f"the secret has no value ({code})")
        if code in DENIED_CODES:
            return GatewayKeyMissing(f"this function may not read the secret ({code})")
        return GatewayKeyUnavailable(f"Secrets Manager answered {code or 'an error'}")
    return GatewayKeyUnavailable(f"the secret could not be read now ({type(exc).__name__})")


def read_gateway_key(get_secret: Callable[[], str | bytes]) -> str:
    """The key as a stripped string; GatewayKeyMissing or GatewayKeyUnavailable otherwise."""
    try:
        value = get_secret()
    except Exception as exc:
        raise classify_read_error(exc) from exc
    if not isinstance(value, str):
        raise GatewayKeyMissing("the secret holds no string (SecretBinary only)")
    key = value.strip()
    if not key:
        raise GatewayKeyMissing("the secret is empty")
    return key
