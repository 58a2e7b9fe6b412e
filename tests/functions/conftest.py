"""Fixtures for the Lambda code: one moto server and two fake HTTP hosts for the session,
state reset before each test that asks for ``cutouts``."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import urllib3
from events_kit import ACCOUNT, REGION, table_schema
from functions_kit import (
    API_KEY,
    BUCKET,
    CALLBACK_BASE,
    DLQ,
    GATEWAY_KEY_SECRET,
    QUEUE,
    SIGNING_KEY,
    SIGNING_SECRET,
    TABLE,
    FakeGateway,
    encode_key,
    s3_notification,
    sqs_event,
)

from cutouts.settings_table import environment

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "cutouts")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "DEBUG")  # so the log-leak test sees everything

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


@pytest.fixture(scope="session")
def gateway():
    server = FakeGateway()
    yield server
    server.close()


@pytest.fixture(scope="session")
def evil():
    """A host nobody should ever contact: tests assert its request count stays zero."""
    server = FakeGateway()
    yield server
    server.close()


@pytest.fixture(scope="session")
def clients(moto_server):
    return {
        name: boto3.client(name, endpoint_url=moto_server, **CREDS)
        for name in ("s3", "dynamodb", "sqs", "secretsmanager")
    }


@dataclass
class Cutouts:
    """The moto-backed world one test runs in."""

    s3: Any
    ddb: Any
    sqs: Any
    queue_url: str
    queue_arn: str
    dlq_url: str
    gateway: FakeGateway
    evil: FakeGateway
    bucket: str = BUCKET
    table: str = TABLE

    # --- S3 ---
    def put(self, key: str, body: bytes) -> dict[str, Any]:
        reply = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return {"etag": reply["ETag"].strip('"'), "size": len(body), "version_id": reply.get("VersionId")}

    def keys(self, prefix: str = "") -> list[str]:
        reply = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in reply.get("Contents", []))

    def report(self, key: str) -> dict[str, Any]:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    # --- events ---
    def notification(
        self, key: str, body: bytes | None = None, sequencer: str = "0055AED6DCD90281E5", raw_key: str | None = None
    ) -> str:
        """Upload ``body`` (unless None) and return the S3 notification JSON for it."""
        info = self.put(key, body) if body is not None else {"etag": "0" * 32, "size": 1234, "version_id": None}
        doc = s3_notification(
            self.bucket,
            raw_key or encode_key(key),
            etag=info["etag"],
            size=info["size"],
            sequencer=sequencer,
            version_id=info["version_id"],
        )
        return json.dumps(doc)

    def sqs_event(self, bodies: list[str], receive_count: int | None = None) -> dict[str, Any]:
        return sqs_event(self.sqs, self.queue_url, self.queue_arn, bodies, receive_count)

    # --- the code under test's own view ---
    def services(self) -> Any:
        from cutouts import runtime

        return runtime.services()

    def job_item(self, job_id: str) -> dict[str, Any] | None:
        return self.ddb.get_item(TableName=self.table, Key={"pk": {"S": f"job#{job_id}"}}).get("Item")

    def all_items(self) -> list[dict[str, Any]]:
        return sorted(self.ddb.scan(TableName=self.table)["Items"], key=lambda i: i["pk"]["S"])


@pytest.fixture
def cutouts(moto_server, clients, gateway, evil, monkeypatch) -> Cutouts:
    urllib3.PoolManager().request("POST", f"{moto_server}/moto-api/reset", retries=False)
    gateway.reset()
    evil.reset()
    s3, ddb, sqs, sm = clients["s3"], clients["dynamodb"], clients["sqs"], clients["secretsmanager"]
    s3.create_bucket(Bucket=BUCKET)
    ddb.create_table(TableName=TABLE, **table_schema())
    dlq_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    sm.create_secret(Name=GATEWAY_KEY_SECRET, SecretString=API_KEY)
    sm.create_secret(Name=SIGNING_SECRET, SecretString=json.dumps({"current": SIGNING_KEY}))

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_server,
        **environment(
            {
                "table_name": TABLE,
                "gateway_base_url": gateway.base_url,
                "gateway_key_secret": GATEWAY_KEY_SECRET,
                "signing_secret": SIGNING_SECRET,
                "callback_base_url": CALLBACK_BASE,
                "allowed_media_hosts": (gateway.host,),
                "allow_http_media": True,
                "http_timeout_seconds": 2,
                "dlq_url": dlq_url,
                "queue_url": queue_url,
            }
        ),
    }
    for name in [n for n in os.environ if n.startswith("CUTOUTS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    from cutouts import runtime
    from cutouts.observability import metrics

    _forget_settings(runtime)
    metrics.clear_metrics()
    yield Cutouts(
        s3=s3,
        ddb=ddb,
        sqs=sqs,
        queue_url=queue_url,
        queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}",
        dlq_url=dlq_url,
        gateway=gateway,
        evil=evil,
    )
    _forget_settings(runtime)
    metrics.clear_metrics()


def _forget_settings(runtime: Any) -> None:
    """Settings and cached secrets go between tests; the AWS clients (same endpoint) are kept: it saves time."""
    from aws_lambda_powertools.utilities import parameters

    runtime.settings.cache_clear()
    parameters.clear_caches()
