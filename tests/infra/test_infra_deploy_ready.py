"""What only a real account shows: names that collide, policies that are too open, stages that mix.

Each test pins one item of docs/deploying.md ("Deploying into a real account").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cutouts import constants as c

ACCOUNT, REGION = "111122223333", "eu-west-1"


def _resources(template_json: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def two_stages(synth: Any) -> dict[str, dict[str, Any]]:
    """dev and prod synthesized for the same account and region (the case that mixed them)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CDK_DEFAULT_ACCOUNT", ACCOUNT)
        patch.setenv("CDK_DEFAULT_REGION", REGION)
        return {stage: dict(synth({"stage": stage})[2].to_json()) for stage in ("dev", "prod")}


def _emitted(template_json: dict[str, Any]) -> set[tuple[str, str]]:
    """(namespace, dimensions) of every application metric the stage's functions emit."""
    emitted = set()
    for fn in _resources(template_json, "AWS::Lambda::Function").values():
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        if "POWERTOOLS_METRICS_NAMESPACE" not in env:
            continue  # CDK's own helper functions emit nothing
        service = env["POWERTOOLS_SERVICE_NAME"]
        for dimensions in (
            [{"Name": "service", "Value": service}],
            [{"Name": "service", "Value": service}, {"Name": "reason"}],
        ):
            emitted.add((env["POWERTOOLS_METRICS_NAMESPACE"], json.dumps(dimensions, sort_keys=True)))
    return emitted


def _read_by_alarms(template_json: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (a["Properties"]["Namespace"], json.dumps(a["Properties"].get("Dimensions", []), sort_keys=True))
        for a in _resources(template_json, "AWS::CloudWatch::Alarm").values()
        if not a["Properties"]["Namespace"].startswith("AWS/")
    }


# ------------------------------------------------------------------ 1. access-log group


def test_access_log_group_is_named_under_vendedlogs_and_unique_per_stack(template_json: dict[str, Any]) -> None:
    # Given the synthesized stack
    (stage,) = _resources(template_json, "AWS::ApiGatewayV2::Stage").values()
    log_group_ref = stage["Properties"]["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    # When the access-log group's name is read
    name = template_json["Resources"][log_group_ref]["Properties"].get("LogGroupName")
    # Then it sits under /aws/vendedlogs/ (outside the account's shared 5,120-character policy)
    assert name is not None, "the access-log group has a generated name outside /aws/vendedlogs/"
    parts = name["Fn::Join"][1]
    assert parts[0].startswith("/aws/vendedlogs/") and "Cutouts-dev" in parts[0]
    # and carries the stack id's UUID, so a retained group never collides with a fresh deployment
    assert {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]} in parts


# ------------------------------------------------------------------ 2. dashboard name


def test_dashboard_name_includes_the_region(template_json: dict[str, Any]) -> None:
    # Given the synthesized stack, when its dashboard's name is read
    (dashboard,) = _resources(template_json, "AWS::CloudWatch::Dashboard").values()
    name = dashboard["Properties"].get("DashboardName")
    # Then it is not one account-global name: it names the region (dashboards are global)
    assert isinstance(name, dict), f"dashboard name {name!r} is the same in every region"
    assert {"Ref": "AWS::Region"} in name["Fn::Join"][1]
    outputs = template_json["Outputs"][c.OUTPUT_DASHBOARD_NAME]["Value"]
    assert outputs == name


# ------------------------------------------------------------------ 5. per-stage metrics


def test_no_alarm_of_one_stage_reads_a_metric_the_other_stages_functions_emit(
    two_stages: dict[str, dict[str, Any]],
) -> None:
    # Given dev and prod in one account and region
    dev, prod = two_stages["dev"], two_stages["prod"]
    # When the metrics each stage's functions emit and its alarms read are compared
    emitted = {"dev": _emitted(dev), "prod": _emitted(prod)}
    read = {"dev": _read_by_alarms(dev), "prod": _read_by_alarms(prod)}
    # Then each stage's application alarms read only its own functions' metrics
    assert emitted["dev"] and emitted["prod"] and read["dev"] and read["prod"]
    assert read["dev"] <= emitted["dev"] and read["prod"] <= emitted["prod"]
    assert not read["dev"] & emitted["prod"], "a dev alarm reads metrics prod's functions emit"
    assert not read["prod"] & emitted["dev"], "a prod alarm reads metrics dev's functions emit"


def test_aws_metric_alarms_and_widgets_name_their_own_stage(two_stages: dict[str, dict[str, Any]]) -> None:
    for stage, other in (("dev", "prod"), ("prod", "dev")):
        template_json = two_stages[stage]
        # Given the alarms on AWS metrics: each dimension names one of this stack's own resources
        for alarm in _resources(template_json, "AWS::CloudWatch::Alarm").values():
            if alarm["Properties"]["Namespace"].startswith("AWS/"):
                for dimension in alarm["Properties"]["Dimensions"]:
                    assert isinstance(dimension["Value"], dict), dimension  # a Ref/GetAtt, not a shared name
        # And the dashboard's widgets read this stage's namespace and service, never the other's
        (dashboard,) = _resources(template_json, "AWS::CloudWatch::Dashboard").values()
        body = json.dumps(dashboard["Properties"]["DashboardBody"])
        assert json.dumps(c.metrics_namespace(stage))[1:-1] in body
        assert c.metrics_namespace(other) not in body and c.service_name(other) not in body


# ------------------------------------------------------------------ 9. upload queue policy


def test_upload_queue_admits_only_the_bucket_of_this_account(template_json: dict[str, Any]) -> None:
    # Given the upload queue's policy
    statements = [
        s
        for policy in _resources(template_json, "AWS::SQS::QueuePolicy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "s3.amazonaws.com"}
    ]
    # Then S3's permission to send names the bucket and the account (bucket ARNs carry no account)
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Effect"] == "Allow" and "sqs:SendMessage" in statement["Action"]
    assert "aws:SourceArn" in statement["Condition"]["ArnLike"]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# ------------------------------------------------------------------ 10. retained bucket policies


@pytest.mark.parametrize(("stage", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_bucket_policies_share_their_buckets_removal_policy(synth: Any, stage: str, policy: str) -> None:
    # Given a destroyable stage (dev) and a retaining one (prod)
    template_json = dict(synth({"stage": stage})[2].to_json())
    buckets = _resources(template_json, "AWS::S3::Bucket")
    policies = _resources(template_json, "AWS::S3::BucketPolicy")
    # Then each bucket policy (TLS-deny, log delivery) is kept exactly when its bucket is
    assert len(policies) == 2
    for bucket_policy in policies.values():
        bucket_id = bucket_policy["Properties"]["Bucket"]["Ref"]
        assert buckets[bucket_id]["DeletionPolicy"] == policy
        assert bucket_policy.get("DeletionPolicy", "Delete") == policy
        assert bucket_policy.get("UpdateReplacePolicy", "Delete") == policy


# ------------------------------------------------------------------ 6. submit batch


@pytest.mark.parametrize(
    "overrides", [{}, {"httpTimeoutSeconds": 20, "maxImageBytes": 512 * 1024 * 1024}], ids=["defaults", "largest"]
)
def test_submit_time_out_fits_a_whole_batch_of_the_slowest_records(synth: Any, overrides: dict[str, Any]) -> None:
    from cutouts.submit_budget import END_MARGIN_SECONDS, record_seconds

    # Given the stack with the default or the largest gateway time-out and image cap
    template_json = dict(synth(overrides)[2].to_json())
    (mapping,) = [
        m
        for m in _resources(template_json, "AWS::Lambda::EventSourceMapping").values()
        if "UploadQueue" in json.dumps(m["Properties"]["EventSourceArn"])
    ]
    (submit,) = [
        f
        for f in _resources(template_json, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == c.SUBMIT_HANDLER
    ]
    http = float(overrides.get("httpTimeoutSeconds", 10))
    max_bytes = int(overrides.get("maxImageBytes", 25 * 1024 * 1024))
    # Then a full batch of records that each take the longest a record may fits the time-out
    batch, timeout = mapping["Properties"]["BatchSize"], submit["Properties"]["Timeout"]
    assert batch * record_seconds(http, max_bytes) + END_MARGIN_SECONDS <= timeout <= 900
    # and the queue still hides a message six times as long
    (queue,) = [q for k, q in _resources(template_json, "AWS::SQS::Queue").items() if "UploadQueue" in k]
    assert queue["Properties"]["VisibilityTimeout"] == 6 * timeout


# ------------------------------------------------------------------ 8. signing key never regenerated


def _signing_secret_id(template_json: dict[str, Any]) -> str:
    (secret_id,) = [k for k in _resources(template_json, "AWS::SecretsManager::Secret") if "SigningKey" in k]
    return secret_id


def test_signing_secret_has_no_generator_and_is_seeded_once_by_a_custom_resource(template_json: dict[str, Any]) -> None:
    from infra.signing_key import RESOURCE_TYPE, SEED_HANDLER

    # Given the signing secret: nothing in the template can make CloudFormation write its value
    secret_id = _signing_secret_id(template_json)
    props = template_json["Resources"][secret_id]["Properties"]
    assert "GenerateSecretString" not in props and "SecretString" not in props
    # And its first value comes from the seed custom resource, whose only property is the secret's id
    (seed,) = _resources(template_json, RESOURCE_TYPE).values()
    assert set(seed["Properties"]) == {"ServiceToken", "SecretId"}
    assert seed["Properties"]["SecretId"] == {"Ref": secret_id}
    # served by our seed function, which may only describe the secret and put a value in it
    fn_id = seed["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    fn = template_json["Resources"][fn_id]
    assert fn["Properties"]["Handler"] == SEED_HANDLER
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in _resources(template_json, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "SeedSigningKey"
    ]
    assert statements == [
        {
            "Sid": "SeedSigningKey",
            "Action": ["secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue"],
            "Effect": "Allow",
            "Resource": {"Ref": secret_id},
        }
    ]


def test_a_change_of_settings_cannot_reach_the_signing_secret(synth: Any, template_json: dict[str, Any]) -> None:
    # Given the stack synthesized with other settings (as a redeploy with changed context would be)
    changed = dict(synth({"httpTimeoutSeconds": 15, "logRetentionDays": 90, "maxReceives": 3})[2].to_json())
    # Then the signing secret and its seed resource are exactly as before: CloudFormation has no
    # change to apply to either, so it neither replaces the secret nor re-runs the seed
    from infra.signing_key import RESOURCE_TYPE

    secret_id = _signing_secret_id(template_json)
    assert changed["Resources"][secret_id] == template_json["Resources"][secret_id]
    (before,) = _resources(template_json, RESOURCE_TYPE).values()
    (after,) = _resources(changed, RESOURCE_TYPE).values()
    assert before == after


def test_every_pipeline_function_waits_for_the_seed(template_json: dict[str, Any]) -> None:
    from infra.signing_key import RESOURCE_TYPE

    (seed_id,) = _resources(template_json, RESOURCE_TYPE)
    for handler in (c.SUBMIT_HANDLER, c.WEBHOOK_HANDLER, c.RECONCILE_HANDLER):
        (fn,) = [
            f
            for f in _resources(template_json, "AWS::Lambda::Function").values()
            if f["Properties"].get("Handler") == handler
        ]
        assert seed_id in fn.get("DependsOn", []), handler


# ------------------------------------------------------------------ 4. bringing your own bucket

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _in_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """As under `cdk deploy`, which passes the target account and region to the app."""
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("CDK_DEFAULT_REGION", REGION)


def test_a_bucket_in_another_region_stops_synthesis(synth: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.config import ConfigError

    # Given a stack deployed to eu-west-1 and a bucket the deployer says is in us-east-2
    _in_region(monkeypatch)
    # When it is synthesized, then it stops with the key, both regions and the fix
    with pytest.raises(ConfigError) as raised:
        synth({"bucketName": "their-images", "bucketRegion": "us-east-2"})
    message = str(raised.value)
    assert "'bucketRegion'" in message and "us-east-2" in message and REGION in message and "--region" in message


def test_a_bucket_in_the_stacks_region_synthesizes_without_a_warning(
    synth: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _in_region(monkeypatch)
    app, stack, _ = synth({"bucketName": "their-images", "bucketRegion": REGION})
    assert not _warnings(app, stack)


def test_a_bucket_without_its_region_is_warned_about(synth: Any) -> None:
    app, stack, _ = synth({"bucketName": "their-images"})
    assert any("bucketRegion" in w for w in _warnings(app, stack))


def _warnings(app: Any, stack: Any) -> list[str]:
    from aws_cdk.assertions import Annotations, Match

    found = Annotations.from_stack(stack).find_warning("*", Match.any_value())
    return [json.dumps(w.entry.data) for w in found]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"bucketRegion": REGION}, "bucketRegion"),
        ({"bucketKmsKeyArn": KEY_ARN}, "bucketKmsKeyArn"),
        ({"bucketName": "their-images", "bucketRegion": "Ireland"}, "bucketRegion"),
        ({"bucketName": "their-images", "bucketKmsKeyArn": "alias/aws/s3"}, "bucketKmsKeyArn"),
        (
            {"bucketName": "their-images", "bucketRegion": "us-east-2", "bucketKmsKeyArn": KEY_ARN},
            "bucketKmsKeyArn",
        ),
    ],
    ids=["region-without-bucket", "key-without-bucket", "bad-region", "alias-not-arn", "key-in-other-region"],
)
def test_bucket_settings_that_cannot_work_stop_synthesis(synth: Any, overrides: dict[str, Any], key: str) -> None:
    from infra.config import ConfigError

    with pytest.raises(ConfigError) as raised:
        synth(overrides)
    assert raised.value.key == key


def test_the_buckets_kms_key_is_granted_to_every_function_through_s3_only(
    synth: Any, template_json: dict[str, Any]
) -> None:
    # Given a bucket whose default encryption is SSE-KMS with the deployer's key
    with_key = dict(synth({"bucketName": "their-images", "bucketKmsKeyArn": KEY_ARN})[2].to_json())

    def key_statements(tj: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            s
            for policy in _resources(tj, "AWS::IAM::Policy").values()
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s.get("Sid") == "UseBucketKey"
        ]

    # Then the submit, webhook, reconcile and render roles may decrypt and generate data keys with it, via S3
    statements = key_statements(with_key)
    assert len(statements) == 4
    for statement in statements:
        assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert statement["Resource"] == KEY_ARN
        via = statement["Condition"]["StringEquals"]["kms:ViaService"]
        assert via == {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
    # and without the key no KMS permission is added
    assert key_statements(template_json) == []
