"""Every mistake an operator can make with the CLI ends in one line and an exit code, never a traceback.

The end-to-end cases run ``python -m cutouts_cli`` as a subprocess, as a person or a script would,
with an environment holding only what the case needs (no region, no credentials, no ~/.aws), and
against the session's moto server or a port where nothing listens: no network.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cli_kit import main
from events_kit import table_schema

from cutouts.job_record import JobStoreError
from cutouts_cli.errors import ExitCode, describe
from cutouts_cli.target import Target, TargetError, target_from_stack

ROOT = Path(__file__).resolve().parents[2]
TARGET = Target(bucket="img", queue_url="http://sqs/q", dlq_url="http://sqs/dlq", table="jobs", region="eu-west-1")


def flags(bucket: str = "no-such-bucket", table: str = "no-such-table") -> list[str]:
    return ["--bucket", bucket, "--queue-url", "http://q", "--dlq-url", "http://dlq", "--table", table]


def run_cli(*argv: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a clean environment: no region, no credentials, no config files, one attempt per call."""
    clean = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")]),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "cutouts_cli", *argv], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
CLIENT_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(word in lines[0] for word in words), lines[0]


def free_port() -> int:
    """A port nothing listens on: bound, read, then closed again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_region_says_to_pass_one_and_exits_3(tmp_path):
    # Given no region anywhere (no AWS_REGION, no ~/.aws/config)
    # When status runs
    result = run_cli("status", *flags(), home=tmp_path, **CREDENTIALS)
    # Then one line names the problem and the fix
    assert_one_line(result, ExitCode.AWS_CONFIG, "no AWS region", "--region", "AWS_DEFAULT_REGION")


def test_no_credentials_says_how_to_give_them_and_exits_3(tmp_path, moto_server):
    # Given a region and an endpoint, but no credentials anywhere
    # When status runs
    result = run_cli("status", *flags(), "--region", "us-east-1", "--endpoint-url", moto_server, home=tmp_path)
    # Then one line says so
    assert_one_line(result, ExitCode.AWS_CONFIG, "no AWS credentials", "AWS_PROFILE")


def test_an_endpoint_with_nothing_listening_is_unreachable_and_exits_6(tmp_path):
    # Given an endpoint URL on a port nothing listens on
    endpoint = f"http://127.0.0.1:{free_port()}"
    # When status runs
    result = run_cli(
        "status", *flags(), "--region", "us-east-1", "--endpoint-url", endpoint, home=tmp_path, **CREDENTIALS
    )
    # Then one line names the endpoint and what to check
    assert_one_line(result, ExitCode.UNREACHABLE, "cannot reach", endpoint, "--endpoint-url")


def test_a_wrong_table_is_not_found_and_exits_4(tmp_path, moto_server):
    # Given a table name that does not exist on the (moto) endpoint
    # When status runs
    result = run_cli(
        "status", *flags(), "--region", "us-east-1", "--endpoint-url", moto_server, home=tmp_path, **CREDENTIALS
    )
    # Then one line names the table and the flag to fix
    assert_one_line(result, ExitCode.NOT_FOUND, "'no-such-table'", "not found", "--table")


def test_a_wrong_bucket_is_not_found_and_exits_4(tmp_path, moto_server):
    # Given a bucket name that does not exist on the (moto) endpoint
    # When backfill lists it
    result = run_cli(
        "backfill",
        "--dry-run",
        *flags(),
        "--region",
        "us-east-1",
        "--endpoint-url",
        moto_server,
        home=tmp_path,
        **CREDENTIALS,
    )
    # Then one line names the bucket and the flag to fix
    assert_one_line(result, ExitCode.NOT_FOUND, "'no-such-bucket'", "not found", "--bucket")


def test_a_wrong_queue_is_not_found_and_exits_4(tmp_path, moto_server):
    # Given a job table that exists on the (moto) endpoint, and queue URLs that do not
    table = f"jobs-{tmp_path.name}"
    boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server, **CLIENT_CREDENTIALS).create_table(
        TableName=table, **table_schema()
    )
    queue = f"{moto_server}/123456789012/no-such-queue"
    argv = [*flags(table=table), "--queue-url", queue, "--dlq-url", queue]
    # When status reads the queue depths
    result = run_cli(
        "status", *argv, "--region", "us-east-1", "--endpoint-url", moto_server, home=tmp_path, **CREDENTIALS
    )
    # Then one line names the queue and the flags to fix
    assert_one_line(result, ExitCode.NOT_FOUND, "queue not found", queue, "--queue-url")


def test_with_json_the_error_is_a_document_on_stdout(tmp_path, moto_server):
    # Given a wrong table and --json
    # When status runs
    result = run_cli(
        "status",
        "--json",
        *flags(),
        "--region",
        "us-east-1",
        "--endpoint-url",
        moto_server,
        home=tmp_path,
        **CREDENTIALS,
    )
    # Then stdout holds only the error document and stderr nothing
    assert result.returncode == ExitCode.NOT_FOUND and result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["kind"]) == (4, "not-found") and "no-such-table" in error["message"]


def client_error(code: str, operation: str = "Query") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "AWS says no"}}, operation)


@pytest.mark.parametrize(
    ("code", "exit_code", "kind"),
    [
        ("ExpiredToken", ExitCode.AWS_CONFIG, "aws-config"),
        ("ExpiredTokenException", ExitCode.AWS_CONFIG, "aws-config"),
        ("UnrecognizedClientException", ExitCode.AWS_CONFIG, "aws-config"),
        ("InvalidClientTokenId", ExitCode.AWS_CONFIG, "aws-config"),
        ("AccessDenied", ExitCode.ACCESS_DENIED, "access-denied"),
        ("AccessDeniedException", ExitCode.ACCESS_DENIED, "access-denied"),
        ("AWS.SimpleQueueService.NonExistentQueue", ExitCode.NOT_FOUND, "not-found"),
        ("QueueDoesNotExist", ExitCode.NOT_FOUND, "not-found"),
        ("NoSuchBucket", ExitCode.NOT_FOUND, "not-found"),
        ("ResourceNotFoundException", ExitCode.NOT_FOUND, "not-found"),
        ("ThrottlingException", ExitCode.UNEXPECTED, "aws-error"),
    ],
)
def test_each_aws_error_code_has_its_exit_code_and_one_line(code, exit_code, kind):
    # When an AWS error code is described
    failure = describe(client_error(code), TARGET)
    # Then it gets its exit code and kind, in one line that names the code
    assert (failure.code, failure.kind) == (exit_code, kind)
    assert "\n" not in failure.message and code in failure.message


def test_a_job_store_error_is_described_by_the_dynamodb_error_it_wraps():
    # Given the job store's own error, raised from DynamoDB's (as job_record does)
    try:
        try:
            raise client_error("ResourceNotFoundException")
        except ClientError as exc:
            raise JobStoreError("DynamoDB query failed: ResourceNotFoundException") from exc
    except JobStoreError as wrapped:
        # When it is described
        failure = describe(wrapped, TARGET)
    # Then it is the missing table, named with its region
    assert failure.code == ExitCode.NOT_FOUND and "'jobs'" in failure.message and "eu-west-1" in failure.message


def cloudformation_answering(code: str) -> Stubber:
    client = boto3.client("cloudformation", region_name="us-east-1", **CLIENT_CREDENTIALS)
    stubber = Stubber(client)
    stubber.add_client_error("describe_stacks", service_error_code=code, service_message="AWS says no")
    stubber.activate()
    return stubber


def test_no_such_stack_is_still_usage_and_exits_2():
    # Given CloudFormation answering that the stack does not exist
    stubber = cloudformation_answering("ValidationError")
    # When the CLI resolves it
    with pytest.raises(TargetError) as caught:
        target_from_stack("Cutouts-nope", cloudformation=stubber.client)
    # Then it is the usage error it always was, naming the flags to check
    assert describe(caught.value).code == ExitCode.USAGE and "--stack" in str(caught.value)


def test_access_denied_on_the_stack_is_access_denied_not_usage():
    # Given CloudFormation refusing to describe the stack to these credentials
    stubber = cloudformation_answering("AccessDenied")
    # When the CLI resolves it
    with pytest.raises(ClientError) as caught:
        target_from_stack("Cutouts-dev", cloudformation=stubber.client)
    # Then it is described as access denied
    assert describe(caught.value).code == ExitCode.ACCESS_DENIED


def test_an_unexpected_error_is_one_line_with_a_hint_unless_debug_asks_for_the_traceback(capsys, monkeypatch):
    from cutouts_cli.commands import status

    # Given a command that fails in a way nobody planned for
    def broken(*_args, **_kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(status, "collect_status", broken)
    argv = ["status", *flags(), "--region", "us-east-1"]
    # When it runs
    code = main(argv)
    # Then one line says what, and how to see more
    err = capsys.readouterr().err
    assert code == ExitCode.UNEXPECTED and "Traceback" not in err
    assert err.strip().splitlines() == [
        "error: unexpected error: RuntimeError: something broke (re-run with CUTOUTS_DEBUG=1 for the traceback)"
    ]
    # And with CUTOUTS_DEBUG=1 the traceback comes first
    monkeypatch.setenv("CUTOUTS_DEBUG", "1")
    assert main(argv) == ExitCode.UNEXPECTED
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.strip().endswith("for the traceback)")


def test_help_lists_the_exit_codes(capsys):
    # When --help is asked for
    with pytest.raises(SystemExit):
        main(["--help"])
    # Then its epilog lists every exit code
    text = capsys.readouterr().out
    assert "exit codes:" in text and all(f"  {code} " in text for code in (0, 1, 2, 3, 4, 5, 6, 7, 130))
