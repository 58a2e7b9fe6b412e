"""Reading the gateway key: only "no value" and "access denied" end jobs; anything else is retried."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import urllib3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from functions_kit import image_bytes

from cutouts.gateway import GatewayPermanentError, GatewayTransientError
from cutouts.gateway_key import GatewayKeyMissing, GatewayKeyUnavailable, read_gateway_key
from cutouts.pixazo import KEY_MISSING, KEY_UNREADABLE, PixazoGateway

SECRET = "cutouts/gateway-key"
NOBODY = "http://192.0.2.1"  # TEST-NET-1: never contacted, the key read fails first


def _client() -> Any:
    return boto3.client("secretsmanager", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def _provider_answering(code: str, status: int = 400) -> SecretsProvider:
    """Powertools' own provider over a client whose GetSecretValue answers ``code``."""
    client = _client()
    stub = Stubber(client)
    stub.add_client_error("get_secret_value", service_error_code=code, http_status_code=status)
    stub.activate()
    return SecretsProvider(boto3_client=client)


def _provider_raising(exc: Exception) -> SecretsProvider:
    client = _client()

    def fail(**_: Any) -> Any:
        raise exc

    client.get_secret_value = fail
    return SecretsProvider(boto3_client=client)


def _provider_holding(**reply: Any) -> SecretsProvider:
    client = _client()
    stub = Stubber(client)
    stub.add_response("get_secret_value", {"ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:x", **reply})
    stub.activate()
    return SecretsProvider(boto3_client=client)


def _read(provider: SecretsProvider) -> str:
    return read_gateway_key(lambda: provider.get(SECRET, max_age=0))


@pytest.mark.parametrize(
    "code",
    ["ResourceNotFoundException", "InvalidRequestException", "AccessDeniedException", "DecryptionFailure"],
)
def test_no_value_or_access_denied_is_missing(code: str) -> None:
    # Given Secrets Manager answering that the secret has no value, or that we may not read it
    provider = _provider_answering(code)
    # When the key is read through Powertools (which wraps the ClientError)
    with pytest.raises(GatewayKeyMissing) as caught:
        _read(provider)
    # Then it is the permanent kind, naming the cause
    assert code in str(caught.value)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("InternalServiceError", 500),
        ("ServiceUnavailable", 503),
        ("KMSThrottlingException", 400),
        ("LimitExceededException", 400),
    ],
)
def test_throttles_and_service_errors_are_unavailable(code: str, status: int) -> None:
    # Given Secrets Manager (or KMS behind it) throttling or failing on its side
    provider = _provider_answering(code, status)
    # When the key is read, then it is the transient kind
    with pytest.raises(GatewayKeyUnavailable):
        _read(provider)


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com"),
        OSError("network is unreachable"),
    ],
    ids=["no-connection", "read-timeout", "os-error"],
)
def test_network_errors_are_unavailable(exc: Exception) -> None:
    # Given the network failing under the SDK, when the key is read
    with pytest.raises(GatewayKeyUnavailable):
        _read(_provider_raising(exc))


@pytest.mark.parametrize(
    "reply",
    [{"SecretString": "  \n"}, {"SecretBinary": b"key"}],
    ids=["blank", "binary"],
)
def test_a_secret_with_no_string_value_is_missing(reply: dict[str, Any]) -> None:
    with pytest.raises(GatewayKeyMissing):
        _read(_provider_holding(**reply))


def test_the_key_is_returned_stripped() -> None:
    assert _read(_provider_holding(SecretString=" k-123\n")) == "k-123"


def test_missing_key_ends_the_job_and_unreadable_key_goes_back_to_the_queue() -> None:
    # Given two gateway clients whose key reads fail permanently and transiently
    missing = PixazoGateway(
        NOBODY, "/m", lambda: _read(_provider_answering("AccessDeniedException")), urllib3.PoolManager(), 1.0
    )
    throttled = PixazoGateway(
        NOBODY, "/m", lambda: _read(_provider_answering("ThrottlingException")), urllib3.PoolManager(), 1.0
    )
    # When each submits, then the first is a permanent gateway-key-missing
    with pytest.raises(GatewayPermanentError) as permanent:
        missing.submit("https://example.invalid/img", "https://example.invalid/cb")
    assert permanent.value.reason == KEY_MISSING[0]
    # and the second a transient error (the message is retried; only a last delivery reports it)
    with pytest.raises(GatewayTransientError) as transient:
        throttled.submit("https://example.invalid/img", "https://example.invalid/cb")
    assert transient.value.reason == KEY_UNREADABLE[0]


def test_a_throttled_key_read_sends_the_upload_back_without_a_report(
    cutouts: Any, lambda_context: Any, monkeypatch: Any
) -> None:
    # Given Secrets Manager throttling every read of the gateway key
    from aws_lambda_powertools.utilities import parameters

    from cutouts.handlers import submit

    throttled = _provider_answering("ThrottlingException")
    monkeypatch.setattr(parameters, "get_secret", lambda name, **kw: throttled.get(name, max_age=0))
    monkeypatch.setattr(
        "cutouts.runtime._secret", lambda name: '{"current": "' + "s" * 64 + '"}'
    )  # the signing key still reads
    key = "uploads/throttled.jpg"
    event = cutouts.sqs_event([cutouts.notification(key, image_bytes("JPEG"))])
    # When the upload's record is handled
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    with pytest.raises(BatchProcessingError):  # the whole (one-record) batch goes back
        submit.handler(event, lambda_context)
    # Then nothing is paid, no failure report is written, and the job is not ended
    assert cutouts.gateway.posts() == []
    assert cutouts.keys("failed/") == []
    assert all(item.get("status", {}).get("S") not in ("FAILED",) for item in cutouts.all_items())
