"""Where the pipeline lives: from a CloudFormation stack's outputs, or named flag by flag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cutouts import constants as c
from cutouts.job_store import JobStore
from cutouts.settings_table import DEFAULTS


class TargetError(ValueError):
    """The stack or the flags do not name a usable pipeline."""


@dataclass(frozen=True)
class Target:
    bucket: str
    queue_url: str
    dlq_url: str
    table: str
    input_prefix: str = DEFAULTS["input_prefix"]
    output_prefix: str = DEFAULTS["output_prefix"]
    failure_prefix: str = DEFAULTS["failure_prefix"]
    region: str | None = None
    endpoint_url: str | None = None


@dataclass
class Clients:
    s3: Any
    sqs: Any
    dynamodb: Any
    table: str

    def store(self) -> JobStore:
        return JobStore(self.dynamodb, self.table)


def client_config() -> Any:
    """Give up on an endpoint that does not answer in seconds, not minutes (AWS_MAX_ATTEMPTS still applies)."""
    from botocore.config import Config

    return Config(connect_timeout=5, retries={"mode": "standard"})


def make_clients(target: Target, session: Any = None) -> Clients:
    import boto3

    session = session or boto3.session.Session(region_name=target.region)

    def client(name: str) -> Any:
        return session.client(name, region_name=target.region, endpoint_url=target.endpoint_url, config=client_config())

    return Clients(client("s3"), client("sqs"), client("dynamodb"), target.table)


def region_of(target: Target, clients: Clients) -> str:
    """The region the enqueued S3-shaped messages name: the given one, else the clients' own."""
    return target.region or clients.s3.meta.region_name or "us-east-1"


def _prefix_of(location: str, bucket: str) -> str:
    """``s3://bucket/uploads/`` -> ``uploads/``."""
    head = f"s3://{bucket}/"
    if not location.startswith(head):
        raise TargetError(f"stack output {location!r} is not under s3://{bucket}/")
    return location[len(head) :]


def target_from_stack(
    stack_name: str, region: str | None = None, endpoint_url: str | None = None, cloudformation: Any = None
) -> Target:
    """Read the bucket, queues, table and prefixes from the deployed stack's outputs."""
    if cloudformation is None:
        import boto3

        cloudformation = boto3.client(
            "cloudformation", region_name=region, endpoint_url=endpoint_url, config=client_config()
        )
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") != "ValidationError":  # e.g. access denied: errors.py says what to do
            raise
        # DescribeStacks with only a name is invalid for one reason: no such stack.
        raise TargetError(
            f"cannot read stack {stack_name!r}: {error.get('Message')}; check --stack and --region"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    needed = (c.OUTPUT_BUCKET_NAME, c.OUTPUT_QUEUE_URL, c.OUTPUT_DLQ_URL, c.OUTPUT_TABLE_NAME)
    missing = [name for name in needed if name not in outputs]
    if missing:
        raise TargetError(f"stack {stack_name!r} has no output {', '.join(missing)}: is it a Cutouts stack?")
    bucket = outputs[c.OUTPUT_BUCKET_NAME]
    prefixes = {
        name: _prefix_of(outputs[key], bucket) if key in outputs else default
        for name, key, default in (
            ("input_prefix", c.OUTPUT_INPUT_LOCATION, DEFAULTS["input_prefix"]),
            ("output_prefix", c.OUTPUT_OUTPUT_LOCATION, DEFAULTS["output_prefix"]),
            ("failure_prefix", c.OUTPUT_FAILURE_LOCATION, DEFAULTS["failure_prefix"]),
        )
    }
    return Target(
        bucket=bucket,
        queue_url=outputs[c.OUTPUT_QUEUE_URL],
        dlq_url=outputs[c.OUTPUT_DLQ_URL],
        table=outputs[c.OUTPUT_TABLE_NAME],
        region=region,
        endpoint_url=endpoint_url,
        **prefixes,
    )
