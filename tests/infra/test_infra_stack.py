"""The synthesized stack: every resource, and the properties that carry the pipeline's guarantees."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from cutouts import constants as c
from cutouts.settings_table import DEFAULTS, ENV_NAMES
from infra.api import ACCESS_LOG_FORMAT
from infra.config import ConfigError


def resources(template_json: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == type_}


def our_functions(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three pipeline functions (not CDK's custom-resource handlers)."""
    handlers = {c.SUBMIT_HANDLER, c.WEBHOOK_HANDLER, c.RECONCILE_HANDLER}
    found = {
        v["Properties"]["Handler"]: v
        for v in resources(template_json, "AWS::Lambda::Function").values()
        if v["Properties"].get("Handler") in handlers
    }
    assert set(found) == handlers
    return found


# ---------------------------------------------------------------- bucket


def test_bucket_is_private_encrypted_versioned_and_logged(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": {"DestinationBucketName": Match.any_value(), "LogFilePrefix": "image-bucket/"},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": 7}, "Status": "Enabled"}),
                        Match.object_like(
                            {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}, "Status": "Enabled"}
                        ),
                    ]
                )
            },
        },
    )


def test_every_bucket_denies_plain_http(template_json: dict[str, Any]) -> None:
    policies = resources(template_json, "AWS::S3::BucketPolicy")
    assert len(policies) == len(resources(template_json, "AWS::S3::Bucket")) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        )


def test_only_the_input_prefix_notifies_the_queue(template: Template) -> None:
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": DEFAULTS["input_prefix"]}]}},
                        "QueueArn": Match.any_value(),
                    }
                ]
            },
            "Managed": True,
        },
    )


def test_dev_destroys_data_and_prod_retains_it(template_json: dict[str, Any], synth: Any) -> None:
    # Given the dev stack (default) and a prod stack
    _, prod_stack, prod = synth({"stage": "prod"})
    prod_json = prod.to_json()
    assert prod_stack.stack_name == "Cutouts-prod"
    for type_ in ("AWS::S3::Bucket", "AWS::DynamoDB::Table"):
        # Then dev deletes bucket and table with the stack, prod keeps them
        assert {r["DeletionPolicy"] for r in resources(template_json, type_).values()} == {"Delete"}
        assert {r["DeletionPolicy"] for r in resources(prod_json, type_).values()} == {"Retain"}
    assert resources(template_json, "Custom::S3AutoDeleteObjects")
    assert not resources(prod_json, "Custom::S3AutoDeleteObjects")
    prod.has_resource_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": True})


def test_existing_bucket_is_used_and_its_other_notifications_kept(synth: Any) -> None:
    # Given -c bucketName=existing-bucket
    _, _, template = synth({"bucketName": "existing-images"})
    # Then no bucket is created and the notification resource merges instead of replacing
    template.resource_count_is("AWS::S3::Bucket", 0)
    template.has_resource_properties(
        "Custom::S3BucketNotifications", {"BucketName": "existing-images", "Managed": False}
    )
    template.has_output(c.OUTPUT_INPUT_LOCATION, {"Value": "s3://existing-images/uploads/"})


# ---------------------------------------------------------------- queue


def test_queue_has_dlq_tls_encryption_and_six_times_visibility(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "VisibilityTimeout": 6 * 100,
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": DEFAULTS["max_receives"]},
        },
    )
    template.has_resource_properties(
        "AWS::SQS::Queue", {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 14 * 86400}
    )
    template.resource_properties_count_is(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
        4,  # the upload queue and its DLQ; the render queue and its DLQ (infra/rendering.py)
    )


def test_submit_reads_the_queue_with_partial_batches_and_a_cap(template: Template, synth: Any) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 5,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": DEFAULTS["max_concurrency"]},
            "MaximumBatchingWindowInSeconds": 1,
        },
    )
    _, _, capped = synth({"maxConcurrency": 17, "maxReceives": 3, "webhookReservedConcurrency": 68})
    capped.has_resource_properties("AWS::Lambda::EventSourceMapping", {"ScalingConfig": {"MaximumConcurrency": 17}})
    capped.has_resource_properties("AWS::SQS::Queue", {"RedrivePolicy": Match.object_like({"maxReceiveCount": 3})})


# ---------------------------------------------------------------- functions


@pytest.mark.parametrize(
    ("handler", "timeout"),
    [(c.SUBMIT_HANDLER, 100), (c.WEBHOOK_HANDLER, 29), (c.RECONCILE_HANDLER, 120)],
)
def test_functions_runtime_layer_tracing_and_logs(template_json: dict[str, Any], handler: str, timeout: int) -> None:
    props = our_functions(template_json)[handler]["Properties"]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["MemorySize"] == 256
    assert props["Timeout"] == timeout
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    # Our own dependency layer (a resource of this stack, any partition), not a published layer's ARN
    # (and the profiles layer: the deployed profiles' canonical JSON, infra/profiles_config.py)
    layer, profiles = props["Layers"]
    assert profiles["Ref"].startswith("ProfilesLayer")
    layer_id = layer["Ref"]
    assert template_json["Resources"][layer_id]["Type"] == "AWS::Lambda::LayerVersion"
    assert layer_id.startswith("DependencyLayer")
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == c.service_name("dev")
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == c.metrics_namespace("dev")
    assert env[ENV_NAMES["input_prefix"]] == DEFAULTS["input_prefix"]
    assert env[ENV_NAMES["output_prefix"]] == DEFAULTS["output_prefix"]
    assert env[ENV_NAMES["failure_prefix"]] == DEFAULTS["failure_prefix"]
    assert env[ENV_NAMES["gateway_base_url"]] == DEFAULTS["gateway_base_url"]
    assert env[ENV_NAMES["gateway_model_path"]] == DEFAULTS["gateway_model_path"]
    assert env[ENV_NAMES["presign_expiry_seconds"]] == str(DEFAULTS["presign_expiry_seconds"])
    assert env[ENV_NAMES["allowed_media_hosts"]] == ",".join(DEFAULTS["allowed_media_hosts"])
    assert env[ENV_NAMES["dedup_enabled"]] == "true"
    table_id = next(iter(resources(template_json, "AWS::DynamoDB::Table")))
    assert env[ENV_NAMES["table_name"]] == {"Ref": table_id}
    assert ENV_NAMES["allow_http_media"] not in env  # local stack only
    # Each function logs to its own log group (retention set there).
    (log_group_id,) = [
        k for k in resources(template_json, "AWS::Logs::LogGroup") if k in json.dumps(props["LoggingConfig"])
    ]
    assert template_json["Resources"][log_group_id]["Properties"]["RetentionInDays"] == DEFAULTS["log_retention_days"]


def test_every_setting_the_functions_read_is_set(template_json: dict[str, Any]) -> None:
    # Every ENV_* name in constants reaches the functions, except the local-only switch and the
    # function-specific ones checked below: a new setting cannot be forgotten in the stack.
    names = {v for k, v in vars(c).items() if k.startswith("ENV_")}
    specific = {ENV_NAMES["callback_base_url"], ENV_NAMES["dlq_url"], ENV_NAMES["allow_http_media"]}
    for handler, fn in our_functions(template_json).items():
        missing = names - specific - set(fn["Properties"]["Environment"]["Variables"])
        assert missing == set(), (handler, missing)


def test_function_specific_environment(template_json: dict[str, Any]) -> None:
    fns = our_functions(template_json)
    env = {h: f["Properties"]["Environment"]["Variables"] for h, f in fns.items()}
    api_id = next(iter(resources(template_json, "AWS::ApiGatewayV2::Api")))
    for handler in (c.SUBMIT_HANDLER, c.RECONCILE_HANDLER):
        # ApiEndpoint is https://<id>.execute-api.<region>.amazonaws.com, no trailing slash.
        assert env[handler][ENV_NAMES["callback_base_url"]] == {"Fn::GetAtt": [api_id, "ApiEndpoint"]}
    assert ENV_NAMES["callback_base_url"] not in env[c.WEBHOOK_HANDLER]
    assert "StorageDeadLetterQueue" in json.dumps(env[c.RECONCILE_HANDLER][ENV_NAMES["dlq_url"]])
    assert ENV_NAMES["dlq_url"] not in env[c.SUBMIT_HANDLER]


def test_log_groups_have_retention(template: Template) -> None:
    # the four functions, the signing-key seed function and the access log
    template.resource_properties_count_is("AWS::Logs::LogGroup", {"RetentionInDays": DEFAULTS["log_retention_days"]}, 6)


def test_functions_write_only_to_their_own_log_group(template_json: dict[str, Any]) -> None:
    roles = resources(template_json, "AWS::IAM::Role")
    for handler, fn in our_functions(template_json).items():
        role = roles[fn["Properties"]["Role"]["Fn::GetAtt"][0]]
        assert "ManagedPolicyArns" not in role["Properties"], handler


# ---------------------------------------------------------------- API, schedule


def test_http_api_has_one_callback_route_to_the_webhook(template: Template, template_json: dict[str, Any]) -> None:
    template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    template.has_resource_properties("AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP"})
    template.resource_count_is("AWS::ApiGatewayV2::Route", 1)
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Route", {"RouteKey": c.CALLBACK_ROUTE, "AuthorizationType": "NONE"}
    )
    (integration,) = resources(template_json, "AWS::ApiGatewayV2::Integration").values()
    assert integration["Properties"]["IntegrationType"] == "AWS_PROXY"
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    webhook_id = [
        k
        for k, v in resources(template_json, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == c.WEBHOOK_HANDLER
    ][0]
    assert webhook_id in json.dumps(integration["Properties"]["IntegrationUri"])


def test_api_stage_is_throttled_and_logs_no_query_string(template_json: dict[str, Any]) -> None:
    (stage,) = resources(template_json, "AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default" and props["AutoDeploy"] is True
    # Rate: what maxConcurrency submit slots can cause (x2 submissions/s x2 deliveries);
    # burst: what the webhook's reserved concurrency can start at once.
    assert props["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": 4 * DEFAULTS["max_concurrency"],
        "ThrottlingBurstLimit": DEFAULTS["webhook_reserved_concurrency"],
    }
    log_format = props["AccessLogSettings"]["Format"]
    assert json.loads(log_format) == ACCESS_LOG_FORMAT
    # The callback token is in the query string: nothing that can carry it is logged.
    for forbidden in ("querystring", "requestOverride", "$input", "$request", "header", "url"):
        assert forbidden.lower() not in log_format.lower().replace("userAgent".lower(), "")


def test_webhook_has_reserved_concurrency_matching_the_throttle(template: Template, synth: Any) -> None:
    # A flood on the public API can neither starve the webhook nor take the account's concurrency.
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": c.WEBHOOK_HANDLER, "ReservedConcurrentExecutions": DEFAULTS["webhook_reserved_concurrency"]},
    )
    for handler in (c.SUBMIT_HANDLER, c.RECONCILE_HANDLER):
        template.has_resource_properties(
            "AWS::Lambda::Function", {"Handler": handler, "ReservedConcurrentExecutions": Match.absent()}
        )
    # Given more submit slots and a larger reservation, both follow
    _, _, larger = synth({"maxConcurrency": 25, "webhookReservedConcurrency": 150})
    larger.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": c.WEBHOOK_HANDLER, "ReservedConcurrentExecutions": 150}
    )
    larger.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {"DefaultRouteSettings": {"ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 150}},
    )


def test_reconciler_runs_on_the_configured_schedule(template: Template, synth: Any) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(1 minute)",
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": Match.any_value()})],
        },
    )
    _, _, every5 = synth({"reconcileEveryMinutes": 5})
    every5.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(5 minutes)"})


# ---------------------------------------------------------------- table


def test_table_key_schema_is_exactly_table_schema(template_json: dict[str, Any]) -> None:
    # The local stack and the DAL tests create their tables from TABLE_SCHEMA: it must be the cloud's.
    (table,) = resources(template_json, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode"):
        assert props[key] == c.TABLE_SCHEMA[key], key


def test_table_has_ttl_pitr_and_encryption(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": c.TABLE_TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


# ---------------------------------------------------------------- secrets


def test_both_secrets_are_created_without_a_value_in_the_template(template_json: dict[str, Any]) -> None:
    secrets = resources(template_json, "AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    # The user fills the gateway key; the signing key's first value comes from a one-shot custom
    # resource (tests/infra/test_infra_deploy_ready.py): no value, no generator in either.
    for secret in secrets.values():
        assert "GenerateSecretString" not in secret["Properties"]
        assert "SecretString" not in secret["Properties"]


def test_existing_gateway_secret_is_referenced_by_name(synth: Any) -> None:
    _, _, template = synth({"gatewayKeySecretName": "team/pixazo-key"})
    template.resource_count_is("AWS::SecretsManager::Secret", 1)
    fn = [
        v
        for v in template.find_resources("AWS::Lambda::Function").values()
        if v["Properties"].get("Handler") == c.SUBMIT_HANDLER
    ][0]
    assert fn["Properties"]["Environment"]["Variables"][ENV_NAMES["gateway_key_secret"]] == "team/pixazo-key"
    policies = json.dumps(template.find_resources("AWS::IAM::Policy"))
    assert ":secret:team/pixazo-key-??????" in policies


def test_no_secret_value_or_key_in_the_template(template_json: dict[str, Any]) -> None:
    text = json.dumps(template_json)
    # No literal secret value anywhere.
    assert '"SecretString"' not in text
    assert "SecretStringValue" not in text
    for fn in our_functions(template_json).values():
        env = fn["Properties"]["Environment"]["Variables"]
        # Secret variables hold references (Ref of a secret = its ARN), never a value.
        for name in (ENV_NAMES["gateway_key_secret"], ENV_NAMES["signing_secret"]):
            assert set(env[name]) == {"Ref"} and "Secrets" in env[name]["Ref"]
        # No other variable looks like a key or token.
        for name, value in env.items():
            assert not re.search(r"(API_KEY|TOKEN|PASSWORD)$", name), name
            if isinstance(value, str):
                # A key is one long unbroken token with letters and digits (paths and hosts have / or .).
                key_like = re.fullmatch(r"[A-Za-z0-9_+=-]{20,}", value) and re.search(r"\d", value)
                assert not key_like, name


# ---------------------------------------------------------------- outputs and refusal


def test_outputs_for_users_and_the_cli(template: Template, template_json: dict[str, Any]) -> None:
    outputs = template_json["Outputs"]
    for name in (
        c.OUTPUT_BUCKET_NAME,
        c.OUTPUT_INPUT_LOCATION,
        c.OUTPUT_OUTPUT_LOCATION,
        c.OUTPUT_FAILURE_LOCATION,
        c.OUTPUT_CALLBACK_BASE_URL,
        c.OUTPUT_GATEWAY_KEY_SECRET_ARN,
        c.OUTPUT_SIGNING_SECRET_ARN,
        c.OUTPUT_TABLE_NAME,
        c.OUTPUT_QUEUE_URL,
        c.OUTPUT_DLQ_URL,
        c.OUTPUT_ALARM_TOPIC_ARN,
        c.OUTPUT_DASHBOARD_NAME,
        c.OUTPUT_SUBMIT_FUNCTION_NAME,
        c.OUTPUT_WEBHOOK_FUNCTION_NAME,
        c.OUTPUT_RECONCILE_FUNCTION_NAME,
    ):
        assert name in outputs, name
    assert "put your gateway api key here" in outputs[c.OUTPUT_GATEWAY_KEY_SECRET_ARN]["Description"].lower()
    assert json.dumps(outputs[c.OUTPUT_INPUT_LOCATION]["Value"]).endswith('/uploads/"]]}')


def test_bad_prefix_is_refused_at_synth_with_a_clear_message(synth: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        synth({"outputPrefix": "uploads/cutouts/"})
    message = str(raised.value)
    assert "Invalid CDK context 'outputPrefix'" in message
    assert "inside inputPrefix 'uploads/'" in message and "loop" in message


def test_timeouts_fit_the_callback_api_and_the_queue(template_json: dict[str, Any]) -> None:
    fns = our_functions(template_json)
    timeout = {h: f["Properties"]["Timeout"] for h, f in fns.items()}
    # The webhook ends before API Gateway's 30 s HTTP integration limit, so the gateway always gets our answer
    (integration,) = resources(template_json, "AWS::ApiGatewayV2::Integration").values()
    api_limit_ms = integration["Properties"].get("TimeoutInMillis", 30_000)
    assert api_limit_ms <= 30_000 and timeout[c.WEBHOOK_HANDLER] * 1000 < api_limit_ms
    # A message is never visible again while a submit invocation may still hold it (AWS: 6x)
    (queue,) = [q for k, q in resources(template_json, "AWS::SQS::Queue").items() if "UploadQueue" in k]
    assert queue["Properties"]["VisibilityTimeout"] == 6 * timeout[c.SUBMIT_HANDLER]
