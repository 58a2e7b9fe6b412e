"""Fixtures shared by every test folder: canonical events, a Lambda context, a moto server.

Nothing here is autouse but the guard that keeps synthesis out of the project's cdk.out/, so the
infra and local-stack tests pay only for what they ask for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from events_kit import ACCOUNT, REGION, load_event, table_schema  # noqa: F401  (re-exported)
from outdir_kit import cdk_out_snapshot


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


@pytest.fixture(scope="session", autouse=True)
def synthesis_writes_to_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Apps built with outdir=None write to CDK_OUTDIR, which the Makefile sets to cdk.out: point it away.

    Subprocesses (``python app.py``) inherit it too. At the end, the project's cdk.out must be as found.
    """
    before = cdk_out_snapshot()
    saved = os.environ.get("CDK_OUTDIR")
    outdir = tmp_path_factory.mktemp("cdk.out")
    os.environ["CDK_OUTDIR"] = str(outdir)
    yield outdir
    if saved is None:
        os.environ.pop("CDK_OUTDIR", None)
    else:
        os.environ["CDK_OUTDIR"] = saved
    after = cdk_out_snapshot()
    if after != before:
        changed = sorted(k for k in after.keys() | before.keys() if after.get(k) != before.get(k))
        pytest.fail(f"the test suite wrote into the project's cdk.out/: {changed[:5]}", pytrace=False)
