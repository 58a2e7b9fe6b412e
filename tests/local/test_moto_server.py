"""The local stand-in's repairs to moto: S3 events as S3 sends them, S3's limits, receiving that stays
cheap, and the transient faults it injects into the functions' calls only."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote_plus

import boto3
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from local.aws import LocalAws
from local.moto_server import AwsFaultConfig, make_sqs_receive_linear

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


@pytest.fixture(scope="module")
def local_aws():
    """The stand-in as the local stack runs it (its own process, two ports), faults off."""
    aws = LocalAws()
    aws.start()
    s3 = boto3.client("s3", endpoint_url=aws.endpoint_url, **CREDS)
    s3.create_bucket(Bucket="limits")
    s3.put_bucket_versioning(Bucket="limits", VersioningConfiguration={"Status": "Enabled"})
    yield aws
    aws.stop()


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_a_key_over_1024_bytes_of_utf8_is_refused_as_s3_does(local_aws):
    s3 = boto3.client("s3", endpoint_url=local_aws.endpoint_url, **CREDS)
    # Given keys at the limit: 1,024 bytes, in ASCII and in three-byte characters
    at_limit = "uploads/" + "k" * (1024 - len("uploads/"))
    unicode_at_limit = "uploads/" + "写" * 338 + ".j"  # 8 + 3 * 338 + 2 bytes
    assert len(at_limit.encode()) == 1024 and len(unicode_at_limit.encode()) == 1024
    # When they are stored, they are accepted
    s3.put_object(Bucket="limits", Key=at_limit, Body=b"x")
    s3.put_object(Bucket="limits", Key=unicode_at_limit, Body=b"x")
    # Then one byte more is refused with 400 KeyTooLongError, for a PUT and for a copy's destination
    with pytest.raises(ClientError) as put:
        s3.put_object(Bucket="limits", Key=at_limit + "g", Body=b"x")
    assert _error(put) == (400, "KeyTooLongError")
    with pytest.raises(ClientError) as copy:
        s3.copy_object(Bucket="limits", Key="写" + at_limit, CopySource={"Bucket": "limits", "Key": at_limit})
    assert _error(copy) == (400, "KeyTooLongError")
    assert s3.list_objects_v2(Bucket="limits", Prefix="写")["KeyCount"] == 0


def test_user_metadata_over_2kb_is_refused_as_s3_does(local_aws):
    s3 = boto3.client("s3", endpoint_url=local_aws.endpoint_url, **CREDS)
    # Given metadata of exactly 2 KB (names after x-amz-meta- plus values, in bytes)
    at_limit = {"source-key": "a" * (2048 - len("source-key") - len("job-id") - 4), "job-id": "abcd"}
    s3.put_object(Bucket="limits", Key="meta/ok.png", Body=b"x", Metadata=at_limit)
    assert s3.head_object(Bucket="limits", Key="meta/ok.png")["Metadata"] == at_limit
    # When one byte more is sent, on a PUT, on a copy that replaces metadata, or on a multipart upload
    over = at_limit | {"job-id": "abcde"}
    with pytest.raises(ClientError) as put:
        s3.put_object(Bucket="limits", Key="meta/big.png", Body=b"x", Metadata=over)
    with pytest.raises(ClientError) as copy:
        s3.copy_object(
            Bucket="limits",
            Key="meta/big.png",
            CopySource={"Bucket": "limits", "Key": "meta/ok.png"},
            MetadataDirective="REPLACE",
            Metadata=over,
        )
    with pytest.raises(ClientError) as multipart:
        s3.create_multipart_upload(Bucket="limits", Key="meta/big.png", Metadata=over)
    # Then each is refused with 400 MetadataTooLarge and nothing is stored
    assert {_error(put), _error(copy), _error(multipart)} == {(400, "MetadataTooLarge")}
    assert s3.list_objects_v2(Bucket="limits", Prefix="meta/big")["KeyCount"] == 0
    # and a copy that keeps the source's (valid) metadata is not measured against the new headers
    s3.copy_object(Bucket="limits", Key="meta/copy.png", CopySource={"Bucket": "limits", "Key": "meta/ok.png"})


def test_copy_source_if_match_is_honoured_as_s3_does(local_aws):
    s3 = boto3.client("s3", endpoint_url=local_aws.endpoint_url, **CREDS)
    # Given a cutout whose ETag was read, then overwritten by another
    old_etag = s3.put_object(Bucket="limits", Key="cutouts/a.png", Body=b"first")["ETag"]
    new_etag = s3.put_object(Bucket="limits", Key="cutouts/a.png", Body=b"second")["ETag"]
    source = {"Bucket": "limits", "Key": "cutouts/a.png"}
    # When it is copied on the condition of the old ETag, S3 refuses with 412 and writes nothing
    with pytest.raises(ClientError) as stale:
        s3.copy_object(Bucket="limits", Key="cutouts/b.png", CopySource=source, CopySourceIfMatch=old_etag)
    assert _error(stale) == (412, "PreconditionFailed")
    assert s3.list_objects_v2(Bucket="limits", Prefix="cutouts/b.png")["KeyCount"] == 0
    # Then the current ETag (quoted or not), or a version whose ETag it is, copies
    s3.copy_object(Bucket="limits", Key="cutouts/b.png", CopySource=source, CopySourceIfMatch=new_etag)
    s3.copy_object(Bucket="limits", Key="cutouts/c.png", CopySource=source, CopySourceIfMatch=new_etag.strip('"'))
    assert s3.get_object(Bucket="limits", Key="cutouts/c.png")["Body"].read() == b"second"


@pytest.fixture
def faulty(local_aws):
    """Faults on every SDK call of the functions' port, for one test."""

    def configure(**fields) -> None:
        local_aws.set_faults(AwsFaultConfig(**fields))

    yield configure
    local_aws.set_faults(AwsFaultConfig())


def test_faults_that_fail_every_attempt_reach_the_caller_and_are_counted(local_aws, faulty):
    retrying = Config(retries={"mode": "standard", "max_attempts": 3})  # the functions' (cutouts.runtime)
    functions_s3 = boto3.client("s3", endpoint_url=local_aws.functions_endpoint_url, config=retrying, **CREDS)
    harness_s3 = boto3.client("s3", endpoint_url=local_aws.endpoint_url, config=retrying, **CREDS)
    harness_s3.put_object(Bucket="limits", Key="faults/a.png", Body=b"a")
    before = local_aws.fault_stats()
    # Given every call of the functions' port chosen for a fault that outlasts botocore's retries
    faulty(rate=1.0, reach=1.0, seed=3)
    # When the functions read an object, the error reaches them: a throttle or a 5xx
    with pytest.raises(ClientError) as reached:
        functions_s3.get_object(Bucket="limits", Key="faults/a.png")
    assert _error(reached) in {(503, "SlowDown"), (500, "InternalError")}
    # and the harness's port and a presigned URL (the gateway's fetch, not an SDK call) see none
    assert harness_s3.get_object(Bucket="limits", Key="faults/a.png")["Body"].read() == b"a"
    url = functions_s3.generate_presigned_url("get_object", Params={"Bucket": "limits", "Key": "faults/a.png"})
    assert urllib3.PoolManager().request("GET", url, retries=False).status == 200
    # Then every attempt was failed (botocore's max_attempts counts retries: 1 + 3 attempts) and one
    # error reached the code
    after = local_aws.fault_stats()
    assert after["injected"] - before["injected"] == 4
    assert after["reached"] - before["reached"] == 1
    assert after["reached_by_operation"]["s3:GetObject"] >= 1


def test_faults_botocore_absorbs_never_reach_the_caller(local_aws, faulty):
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=local_aws.functions_endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
        **CREDS,
    )
    ddb.create_table(
        TableName="faults",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    before = local_aws.fault_stats()
    # Given every call faulted, but only on attempts botocore will retry
    faulty(rate=1.0, reach=0.0, seed=5)
    # When the functions write and read
    ddb.put_item(TableName="faults", Item={"pk": {"S": "a"}})
    item = ddb.get_item(TableName="faults", Key={"pk": {"S": "a"}})["Item"]
    # Then the calls succeed, faults were injected, and none reached the code
    after = local_aws.fault_stats()
    assert item == {"pk": {"S": "a"}}
    assert after["injected"] > before["injected"]
    assert after["reached"] == before["reached"]
    assert set(after["injected_by_kind"]) <= {
        "dynamodb ProvisionedThroughputExceededException",
        "dynamodb ThrottlingException",
        "dynamodb InternalServerError",
        "s3 SlowDown",
        "s3 InternalError",
    }


def test_fault_draws_are_reproducible_from_the_seed():
    from local.moto_server import AwsFaults

    # Given two injectors with the same seed, and a DynamoDB call shape
    def decisions(seed: int) -> list[bool]:
        faults = AwsFaults(AwsFaultConfig(rate=0.3, reach=1.0, seed=seed))
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem"}
        return [
            faults._decide(environ | {"HTTP_AMZ_SDK_INVOCATION_ID": str(i), "HTTP_AMZ_SDK_REQUEST": "attempt=1; max=1"})
            is not None
            for i in range(200)
        ]

    # Then the same calls are faulted, at about the rate asked for
    assert decisions(7) == decisions(7)
    assert 30 <= sum(decisions(7)) <= 90
