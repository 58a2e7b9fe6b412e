"""Bringing your own bucket (`-c bucketName=...`): what can be checked before S3 refuses, and its KMS key.

- Region: S3 sends notifications only to a queue in the bucket's region. The bucket's region is
  not knowable offline, so the deployer states it (`bucketRegion`) and synthesis compares it with
  the stack's region whenever that is concrete, which it is under `cdk deploy` (the CLI passes
  the target region as CDK_DEFAULT_REGION). Without `bucketRegion` a warning says so.
- SSE-KMS: a bucket whose default encryption is a customer KMS key needs kms:Decrypt (reads,
  and the gateway's presigned GET, signed by our roles) and kms:GenerateDataKey (writes) for the
  functions' roles; `bucketKmsKeyArn` grants both, through S3 only (kms:ViaService).
- Overlapping ObjectCreated rules on the bucket cannot be seen offline: docs/deploying.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aws_cdk import Annotations, Aws, Stack, Token

from infra.config import ConfigError, StackConfig
from infra.functions import CutoutsFunction

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key/[A-Za-z0-9-]{1,128}$")


def check_existing_bucket(stack: Stack, config: StackConfig) -> None:
    """ConfigError for what is wrong already at synth; a warning for what cannot be checked."""
    region, key_arn = config.bucket_region, config.bucket_kms_key_arn
    if not config.bucket_name:
        for key, value in (("bucketRegion", region), ("bucketKmsKeyArn", key_arn)):
            if value:
                raise ConfigError(key, "applies only with bucketName (the stack's own bucket is in its region, SSE-S3)")
        return
    if region and not _REGION.match(region):
        raise ConfigError("bucketRegion", f"{region!r} is not a region name like eu-west-1")
    stack_region = None if Token.is_unresolved(stack.region) else stack.region
    if region and stack_region and region != stack_region:
        raise ConfigError(
            "bucketRegion",
            f"bucket {config.bucket_name!r} is in {region} but the stack deploys to {stack_region}: S3 notifies "
            f"only a queue in the bucket's region; deploy to {region} (e.g. --region {region}) or use a bucket in "
            f"{stack_region}",
        )
    if key_arn:
        match = _KMS_KEY_ARN.match(key_arn)
        if not match:
            raise ConfigError(
                "bucketKmsKeyArn", f"{key_arn!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
            )
        key_region = match.group(1)
        for what, other in (("bucketRegion", region), ("the stack's region", stack_region)):
            if other and key_region != other:
                raise ConfigError(
                    "bucketKmsKeyArn", f"the key is in {key_region} but {what} is {other}: use the bucket's key"
                )
    if not region:
        Annotations.of(stack).add_warning_v2(
            "cutouts:bucketRegion",
            f"bucketName {config.bucket_name!r} is used without bucketRegion: the bucket must be in the stack's "
            "region, or S3 refuses the notification at deploy time. Set -c bucketRegion=<its region> to check it "
            "at synthesis.",
        )


def grant_bucket_key(config: StackConfig, functions: Iterable[CutoutsFunction]) -> None:
    """kms:Decrypt and kms:GenerateDataKey on the bucket's key, only for requests S3 makes for us."""
    if not config.bucket_kms_key_arn:
        return
    for fn in functions:
        fn.allow(
            "UseBucketKey",
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [config.bucket_kms_key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
        )
