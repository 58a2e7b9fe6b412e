"""Fixtures shared by every test folder: canonical events, a Lambda context, a moto server.

Nothing here is autouse, so the infra and local-stack tests pay only for what they ask for.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from events_kit import ACCOUNT, REGION, load_event, table_schema  # noqa: F401  (re-exported)


@pytest.fixture(name="load_event")
def load_event_fixture():
    return load_event


@dataclass
class LambdaContext:
    function_name: str = "cutouts-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:cutouts-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name: str = "/aws/lambda/cutouts-test"
    log_stream_name: str = "2024/05/01/[$LATEST]abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture(scope="session")
def moto_server():
    """One moto server (S3, SQS, DynamoDB, Secrets Manager) for the session; tests reset it."""
    from moto.server import ThreadedMotoServer

    from local.moto_server import make_dynamodb_writes_atomic, make_s3_events_faithful

    make_dynamodb_writes_atomic()  # as DynamoDB: a condition and its write are one step
    make_s3_events_faithful()  # as S3: event records name the version and order it

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
