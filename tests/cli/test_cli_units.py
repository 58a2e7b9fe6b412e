"""The CLI's pieces that need no running pipeline: argument parsing, S3-shaped messages, stack outputs."""

from __future__ import annotations

import json

import boto3
import pytest
from cli_kit import main

from cutouts import constants as c
from cutouts.notifications import source_from_s3_record
from cutouts_cli.s3_events import SourceVersion, notification_body
from cutouts_cli.status import advice
from cutouts_cli.target import TargetError, target_from_stack


def test_backfill_message_reads_back_as_the_same_object_version():
    # Given an object whose key needs URL-encoding
    source = SourceVersion("b", "uploads/red flower+é 100%.jpg", 1234, "abc123", "v-1")
    # When its S3-shaped message is parsed the way the submit function parses S3's own
    record = json.loads(notification_body(source, "eu-west-1", None))["Records"][0]
    parsed = source_from_s3_record(record)
    # Then it names the same key, version and job, and looks like S3's notification
    assert (parsed.key, parsed.version_id, parsed.etag, parsed.job_id) == (source.key, "v-1", "abc123", source.job_id)
    assert record["eventName"] == "ObjectCreated:Put" and record["eventSource"] == "aws:s3"
    assert record["s3"]["object"]["key"] == "uploads/red+flower%2B%C3%A9+100%25.jpg"
    assert "sequencer" not in record["s3"]["object"] and record["s3"]["object"]["size"] == 1234


def test_gateway_reasons_get_the_gateways_advice_and_others_the_reports():
    assert "top it up" in advice("gateway-insufficient-balance")
    assert "valid key" in advice("gateway-unauthorized")
    assert "JPEG, PNG or WebP" in advice("unsupported-type")


def test_without_stack_or_flags_the_cli_says_what_is_missing(capsys):
    # When the CLI is run with no way to find the pipeline
    code = main(["status", "--bucket", "b"])
    # Then it exits 2 naming the missing flags
    assert code == 2
    assert "--queue-url" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in ("backfill", "status", "retry", "--stack", "--json"))


def test_stack_outputs_name_the_pipeline(moto_server):
    # Given a CloudFormation stack with the Cutouts outputs (moto)
    outputs = {
        c.OUTPUT_BUCKET_NAME: "img-bucket",
        c.OUTPUT_QUEUE_URL: "https://sqs/q",
        c.OUTPUT_DLQ_URL: "https://sqs/dlq",
        c.OUTPUT_TABLE_NAME: "jobs",
        c.OUTPUT_INPUT_LOCATION: "s3://img-bucket/in/",
        c.OUTPUT_OUTPUT_LOCATION: "s3://img-bucket/out/",
        c.OUTPUT_FAILURE_LOCATION: "s3://img-bucket/bad/",
    }
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cfn = boto3.client(
        "cloudformation",
        region_name="us-east-1",
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    cfn.create_stack(StackName="Cutouts-test", TemplateBody=json.dumps(template))
    # When the CLI resolves the stack
    target = target_from_stack("Cutouts-test", "us-east-1", moto_server, cloudformation=cfn)
    # Then it has every name and prefix
    assert (target.bucket, target.queue_url, target.dlq_url, target.table) == (
        "img-bucket",
        "https://sqs/q",
        "https://sqs/dlq",
        "jobs",
    )
    assert (target.input_prefix, target.output_prefix, target.failure_prefix) == ("in/", "out/", "bad/")
    with pytest.raises(TargetError):
        target_from_stack("No-such-stack", "us-east-1", moto_server, cloudformation=cfn)
