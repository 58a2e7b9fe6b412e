"""moto's server as the stand-in for S3, SQS, DynamoDB and Secrets Manager, with our resources.

The resources mirror the stack: a versioned bucket whose ObjectCreated notification is filtered
on the input prefix into a queue, that queue's dead-letter queue, the job table built from the
same schema the stack uses, and the two secrets. On request, a second bucket whose versioning was
never enabled notifies the same queue: a bucket brought with ``-c bucketName=`` may be one, and
its events carry no ``versionId``, so its jobs are keyed on the ETag.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from cutouts import constants as c
from local.moto_server import FAULTS_PATH, AwsFaultConfig

REGION = "us-east-1"
ACCOUNT = "123456789012"


def table_schema() -> dict[str, Any]:
    """The job table's key schema: the stack's own (an infra test pins the template to it)."""
    return copy.deepcopy(dict(c.TABLE_SCHEMA))


def use_fake_credentials(endpoint_url: str) -> None:
    """Point every boto3 client of this process at moto, with throwaway credentials."""
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S105 - moto's dummy credentials
        AWS_SESSION_TOKEN="testing",  # noqa: S105
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )


@dataclass
class LocalResources:
    endpoint_url: str
    bucket: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    table_name: str
    gateway_key_secret: str
    signing_secret: str
    unversioned_bucket: str | None = None  # never versioned; notifies the same queue

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG)


# Fail a stalled request fast and retry it, as the functions do (botocore's default waits 60 s).
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalAws:
    """moto's server in its own process, so it gets a core of its own (it is the busiest part).

    It listens on two ports: ``endpoint_url`` for the harness (creating resources, uploading,
    inspecting) and ``functions_endpoint_url`` for the functions, the only port where
    :class:`~local.moto_server.AwsFaultConfig` faults are injected.
    """

    def __init__(self, faults: AwsFaultConfig | None = None) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.faults = faults or AwsFaultConfig()
        self.endpoint_url = ""
        self.functions_endpoint_url = ""

    def start(self, timeout: float = 30.0) -> str:
        port, functions_port = _free_port(), _free_port()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.moto_server",
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
                "--functions-port",
                str(functions_port),
                "--parent-pid",
                str(os.getpid()),
                *self.faults.arguments(),
            ],
            cwd=_REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group: a Ctrl-C in the terminal reaches only us, and we stop it in
            # order (after the functions, which still talk to it). If we die without stopping it
            # (SIGKILL, a crash), it sees its parent gone and exits: see --parent-pid.
            process_group=0,
        )
        atexit.register(self.stop)
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self.functions_endpoint_url = f"http://127.0.0.1:{functions_port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto's server exited with {self._process.returncode}")
            try:
                for url in (self.endpoint_url, self.functions_endpoint_url):
                    with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1):  # noqa: S310
                        pass
                return self.endpoint_url
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto's server did not start within {timeout} s")

    def set_faults(self, faults: AwsFaultConfig) -> None:
        """Change the functions' port's faults (counters are kept): a toggle for tests."""
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{self.endpoint_url}{FAULTS_PATH}",
            data=json.dumps(dataclasses.asdict(faults)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - our own loopback server
            self.faults = faults

    def fault_stats(self) -> dict[str, Any]:
        """What the fault injector did: calls seen and faulted, attempts failed, errors that reached our code."""
        with urllib.request.urlopen(f"{self.endpoint_url}{FAULTS_PATH}", timeout=5) as answer:  # noqa: S310
            return dict(json.load(answer))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        """Stop the server and wait for it, so its ports are free when this returns."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None


def create_resources(
    endpoint_url: str,
    *,
    api_key: str,
    input_prefix: str,
    visibility_timeout: int,
    max_receives: int,
    name: str | None = None,
    unversioned_bucket: bool = False,
) -> LocalResources:
    """Create the stack's resources; names are unique, as moto keeps its state per process."""
    name = name or f"cutouts-local-{secrets.token_hex(4)}"

    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url)

    s3, sqs, ddb, sm = client("s3"), client("sqs"), client("dynamodb"), client("secretsmanager")
    bucket = f"{name}-bucket"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=f"{name}-queue",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    notification = {
        "QueueConfigurations": [
            {
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": input_prefix}]}},
            }
        ]
    }
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notification)
    plain_bucket = None
    if unversioned_bucket:
        plain_bucket = f"{name}-plain"
        s3.create_bucket(Bucket=plain_bucket)
        s3.put_bucket_notification_configuration(Bucket=plain_bucket, NotificationConfiguration=notification)

    table_name = f"{name}-jobs"
    ddb.create_table(TableName=table_name, **table_schema())
    ddb.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": c.TABLE_TTL_ATTRIBUTE}
    )

    key_arn = sm.create_secret(Name=f"{name}/gateway-key", SecretString=api_key)["ARN"]
    signing_arn = sm.create_secret(
        Name=f"{name}/callback-signing", SecretString=json.dumps({"current": secrets.token_urlsafe(48)})
    )["ARN"]
    return LocalResources(
        endpoint_url, bucket, queue_url, queue_arn, dlq_url, table_name, key_arn, signing_arn, plain_bucket
    )
