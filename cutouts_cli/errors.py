"""What went wrong, in one line and one exit code: every exception the CLI ends on is mapped here.

AWS errors are told apart by their type (botocore) or their error code (``ClientError``), never by
message text, and found through the exception's cause chain, because the job store wraps
DynamoDB's ``ClientError`` in its own ``JobStoreError``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from cutouts_cli.target import Target, TargetError

DEBUG_ENV = "CUTOUTS_DEBUG"


class ExitCode(IntEnum):
    """What a script can rely on; ``--help`` and docs/operations.md list the same table."""

    OK = 0
    PARTIAL = 1  # not everything was done: some items failed, or the confirmation was refused
    USAGE = 2  # bad usage, or no usable pipeline named (no flags, no such stack), as argparse
    AWS_CONFIG = 3  # no region, no credentials, or credentials AWS rejects (expired, wrong)
    NOT_FOUND = 4  # the table, bucket or queue named does not exist there
    ACCESS_DENIED = 5  # the credentials work but may not do this
    UNREACHABLE = 6  # nothing answered at the AWS endpoint
    UNEXPECTED = 7  # anything else: a bug, or an AWS error not listed here
    INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


EXIT_CODES_HELP = """\
exit codes:
  0    done
  1    not everything done: some items failed, or the confirmation was refused
  2    bad usage, or no usable pipeline named (missing flags, no such stack)
  3    AWS configuration: no region, no credentials, or expired/invalid credentials
  4    not found: the table, bucket or queue does not exist (check the flags, --region)
  5    access denied: the credentials may not do this
  6    unreachable: nothing answered at the AWS endpoint (network, --endpoint-url)
  7    unexpected error (re-run with CUTOUTS_DEBUG=1 for the traceback)
  130  interrupted (Ctrl-C)
With --json, an error is printed on stdout as {"error": {"code", "kind", "message"}}."""


class Failure(NamedTuple):
    code: ExitCode
    kind: str  # stable, for scripts: usage, aws-config, not-found, access-denied, unreachable, ...
    message: str  # one line: the problem, then what to do about it

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {"error": {"code": int(self.code), "kind": self.kind, "message": self.message}}


# AWS error codes, as ClientError carries them.
_EXPIRED_OR_INVALID = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "AuthFailure",
    }
)
_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "AllAccessDisabled", "AuthorizationError"})
_NO_TABLE = frozenset({"ResourceNotFoundException"})
_NO_BUCKET = frozenset({"NoSuchBucket"})
_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_CREDENTIALS_FIX = (
    "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or run aws configure / aws sso login)"
)


def describe(exc: BaseException, target: Target | None = None) -> Failure:
    """The exit code and the one line to print for an exception the CLI ended on."""
    if isinstance(exc, KeyboardInterrupt):
        return Failure(ExitCode.INTERRUPTED, "interrupted", "interrupted")
    if isinstance(exc, TargetError):
        return Failure(ExitCode.USAGE, "usage", str(exc))
    from cutouts.profiles import ProfileError, UnknownProfile

    if isinstance(exc, ProfileError | UnknownProfile):  # rerender's --profiles-file / --profile
        return Failure(ExitCode.USAGE, "usage", str(exc).strip("'\""))
    client_error = _client_error_in(exc)
    if client_error is not None:
        return _describe_client_error(client_error, target)
    if isinstance(exc, NoRegionError):
        return Failure(ExitCode.AWS_CONFIG, "aws-config", "no AWS region: pass --region or set AWS_DEFAULT_REGION")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Failure(ExitCode.AWS_CONFIG, "aws-config", f"no AWS credentials: {_CREDENTIALS_FIX}")
    if isinstance(exc, ProfileNotFound):
        return Failure(ExitCode.AWS_CONFIG, "aws-config", f"{_line(exc)}: check AWS_PROFILE or ~/.aws/config")
    if isinstance(exc, TokenRetrievalError | SSOError | CredentialRetrievalError):
        return Failure(
            ExitCode.AWS_CONFIG, "aws-config", f"AWS credentials could not be loaded ({_line(exc)}): {_CREDENTIALS_FIX}"
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        where = (target.endpoint_url if target else None) or "the AWS endpoint"
        return Failure(
            ExitCode.UNREACHABLE,
            "unreachable",
            f"cannot reach {where} ({type(exc).__name__}): check --endpoint-url, --region and the network",
        )
    if isinstance(exc, ParamValidationError):
        return Failure(ExitCode.USAGE, "usage", f"AWS refused a parameter: {_line(exc)}")
    return Failure(
        ExitCode.UNEXPECTED,
        "unexpected",
        f"unexpected error: {type(exc).__name__}: {_line(exc)} (re-run with {DEBUG_ENV}=1 for the traceback)",
    )


def _describe_client_error(exc: ClientError, target: Target | None) -> Failure:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    said = f"({exc.operation_name}: {code})"
    region = (target.region if target else None) or "your default region"
    if code in _EXPIRED_OR_INVALID:
        return Failure(
            ExitCode.AWS_CONFIG,
            "aws-config",
            f"AWS rejected the credentials as expired or invalid {said}: refresh them ({_CREDENTIALS_FIX})",
        )
    if code in _ACCESS_DENIED:
        return Failure(
            ExitCode.ACCESS_DENIED,
            "access-denied",
            f"access denied {said}: use credentials whose role may read and write the pipeline's bucket, "
            "queues and table",
        )
    if code in _NO_TABLE:
        table = repr(target.table) if target else "the job table"
        return Failure(
            ExitCode.NOT_FOUND,
            "not-found",
            f"table {table} not found in {region} {said}: check --table (or --stack) and --region",
        )
    if code in _NO_BUCKET:
        bucket = repr(error.get("BucketName") or (target.bucket if target else "?"))
        return Failure(
            ExitCode.NOT_FOUND, "not-found", f"bucket {bucket} not found {said}: check --bucket (or --stack)"
        )
    if code in _NO_QUEUE:
        queues = (
            f"--queue-url {target.queue_url} and --dlq-url {target.dlq_url}" if target else "--queue-url, --dlq-url"
        )
        return Failure(
            ExitCode.NOT_FOUND, "not-found", f"queue not found {said}: check {queues} (or --stack), and --region"
        )
    return Failure(
        ExitCode.UNEXPECTED,
        "aws-error",
        f"AWS answered {code or 'an error'} to {exc.operation_name}: {_line(error.get('Message') or '')} "
        f"(re-run with {DEBUG_ENV}=1 for the traceback)",
    )


def _client_error_in(exc: BaseException) -> ClientError | None:
    """The ClientError this exception is or was raised from (JobStoreError wraps one)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ClientError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def _line(value: object) -> str:
    return " ".join(str(value).split())
