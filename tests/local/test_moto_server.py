"""The local stand-in's repairs to moto: S3 events as S3 sends them, and receiving that stays cheap."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote_plus

import boto3
import pytest
import urllib3
from moto import mock_aws

from local.moto_server import make_sqs_receive_linear

CREDS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def versioned_bucket_with_queue(moto_server):
    urllib3.PoolManager().request("POST", f"{moto_server}/moto-api/reset", retries=False)
    s3 = boto3.client("s3", endpoint_url=moto_server, **CREDS)
    sqs = boto3.client("sqs", endpoint_url=moto_server, **CREDS)
    s3.create_bucket(Bucket="events")
    s3.put_bucket_versioning(Bucket="events", VersioningConfiguration={"Status": "Enabled"})
    queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="events",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return s3, sqs, queue_url


def _object_records(sqs, queue_url: str, expected: int) -> list[dict]:
    records: list[dict] = []
    deadline = time.monotonic() + 10
    while len(records) < expected and time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in reply.get("Messages", []):
            records += json.loads(message["Body"]).get("Records", [])  # the s3:TestEvent has none
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return records


def test_s3_events_name_the_version_and_order_overwrites_of_a_key(versioned_bucket_with_queue):
    s3, sqs, queue_url = versioned_bucket_with_queue
    # Given a key uploaded twice, and another key in between
    first = s3.put_object(Bucket="events", Key="uploads/a.jpg", Body=b"one")["VersionId"]
    s3.put_object(Bucket="events", Key="uploads/b.jpg", Body=b"other")
    second = s3.put_object(Bucket="events", Key="uploads/a.jpg", Body=b"two")["VersionId"]
    # When the notifications arrive
    objects = [r["s3"]["object"] for r in _object_records(sqs, queue_url, 3)]
    records = [obj for obj in objects if unquote_plus(obj["key"]) == "uploads/a.jpg"]  # keys arrive URL-encoded
    # Then each names its own version, and the later upload has the greater sequencer, as in S3
    by_version = {obj["versionId"]: int(obj["sequencer"], 16) for obj in records}
    assert set(by_version) == {first, second}
    assert by_version[second] > by_version[first]


def test_the_retention_check_decides_as_before_from_the_queue_period():
    make_sqs_receive_linear()
    with mock_aws():
        from moto.sqs.models import sqs_backends

        sqs = boto3.client("sqs", **CREDS)
        queue_url = sqs.create_queue(QueueName="short", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=queue_url, MessageBody="m")
        backend = sqs_backends["123456789012"]["us-east-1"]
        (message,) = backend.get_queue("short")._messages
        # A message inside the queue's retention period is kept
        assert backend.is_message_valid_based_on_retention_period("short", message)
        # one sent longer ago than the period is not, and is no longer delivered
        message.sent_timestamp -= 61_000
        assert not backend.is_message_valid_based_on_retention_period("short", message)
        assert "Messages" not in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
