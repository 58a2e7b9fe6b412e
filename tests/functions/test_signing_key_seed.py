"""The signing secret gets its first value once; no deployment ever writes over a value it has."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from cutouts.callback_token import signing_keys_from_secret
from cutouts.handlers import signing_key_seed as seed

RESPONSE_URL = "https://cloudformation-custom-resource-response.example/put"


@pytest.fixture
def sm(clients: dict[str, Any]) -> Any:
    return clients["secretsmanager"]


@pytest.fixture
def secret(sm: Any) -> str:
    """A new secret with no value, as the stack creates it."""
    return str(sm.create_secret(Name=f"seed-test-{uuid.uuid4().hex}")["ARN"])


def _event(request_type: str, secret_id: str, request_id: str | None = None) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "RequestId": request_id or str(uuid.uuid4()),
        "ResponseURL": RESPONSE_URL,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Cutouts-dev/abc",
        "LogicalResourceId": "SigningKeySeed",
        "ResourceType": "Custom::SigningKeySeed",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:1:function:f", "SecretId": secret_id},
        **({"PhysicalResourceId": secret_id} if request_type != "Create" else {}),
    }


class Responses:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, body: bytes) -> None:
        self.sent.append((url, json.loads(body)))


def _run(event: dict[str, Any], sm: Any) -> dict[str, Any]:
    responses = Responses()
    seed.handler(event, None, secretsmanager=sm, put=responses)
    ((url, body),) = responses.sent
    assert url == RESPONSE_URL
    return body


def _versions(sm: Any, secret_id: str) -> dict[str, list[str]]:
    return dict(sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {})


def test_create_gives_an_empty_secret_a_usable_signing_key(sm: Any, secret: str) -> None:
    # Given the stack's new, empty signing secret
    # When CloudFormation creates the seed resource
    body = _run(_event("Create", secret), sm)
    # Then the secret holds {"current": <key>} that the functions accept, and the answer carries no value
    value = sm.get_secret_value(SecretId=secret)["SecretString"]
    assert list(json.loads(value)) == ["current"] and signing_keys_from_secret(value)
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == secret
    assert "Data" not in body and json.loads(value)["current"] not in json.dumps(body)


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_a_secret_with_a_value_is_never_overwritten(sm: Any, secret: str, request_type: str) -> None:
    # Given a signing secret rotated by hand to {current, previous}
    rotated = json.dumps({"current": "n" * 64, "previous": "o" * 64})
    sm.put_secret_value(SecretId=secret, SecretString=rotated)
    before = _versions(sm, secret)
    # When a deployment creates or updates the seed resource
    body = _run(_event(request_type, secret), sm)
    # Then the value and its versions are exactly as they were
    assert body["Status"] == "SUCCESS"
    assert sm.get_secret_value(SecretId=secret)["SecretString"] == rotated
    assert _versions(sm, secret) == before


def test_an_update_naming_a_replaced_empty_secret_fills_it(sm: Any, secret: str) -> None:
    # Given an update whose secret id is a new, empty secret (the old one was replaced)
    body = _run(_event("Update", secret), sm)
    # Then the new secret gets a key, so the functions are not left without one
    assert body["Status"] == "SUCCESS"
    assert signing_keys_from_secret(sm.get_secret_value(SecretId=secret)["SecretString"])


def test_delete_leaves_the_secret_alone(sm: Any, secret: str) -> None:
    sm.put_secret_value(SecretId=secret, SecretString=json.dumps({"current": "k" * 64}))
    before = _versions(sm, secret)
    body = _run(_event("Delete", secret), sm)
    assert body["Status"] == "SUCCESS" and _versions(sm, secret) == before


def test_a_retried_create_writes_one_version(sm: Any, secret: str) -> None:
    # Given CloudFormation sending the same Create twice (a retry)
    event = _event("Create", secret)
    _run(event, sm)
    first = sm.get_secret_value(SecretId=secret)["SecretString"]
    body = _run(event, sm)
    # Then the second finds the value and keeps it
    assert body["Status"] == "SUCCESS"
    assert sm.get_secret_value(SecretId=secret)["SecretString"] == first
    assert len(_versions(sm, secret)) == 1


def test_a_failure_is_answered_not_raised(sm: Any) -> None:
    # Given a secret id that does not exist
    body = _run(_event("Create", "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"), sm)
    # Then CloudFormation is told FAILED (it would otherwise wait an hour for an answer)
    assert body["Status"] == "FAILED" and "ResourceNotFoundException" in body["Reason"]


def test_the_answer_goes_only_to_an_https_url() -> None:
    with pytest.raises(ValueError, match="https"):
        seed.put_response("http://169.254.169.254/latest", b"{}")
