"""Least privilege, pinned: each function role's policy is exactly this; a widening fails here."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from cutouts import constants as c
from cutouts.settings_table import DEFAULTS


def _ids(template_json: dict[str, Any]) -> dict[str, str]:
    res = template_json["Resources"]

    def one(type_: str, contains: str) -> str:
        (found,) = [k for k, v in res.items() if v["Type"] == type_ and contains in k]
        return found

    return {
        "bucket": one("AWS::S3::Bucket", "StorageBucket"),
        "table": one("AWS::DynamoDB::Table", "JobTable"),
        "queue": one("AWS::SQS::Queue", "UploadQueue"),
        "dlq": one("AWS::SQS::Queue", "StorageDeadLetterQueue"),
        "render_queue": one("AWS::SQS::Queue", "RenderingRenderQueue"),
        "render_dlq": one("AWS::SQS::Queue", "RenderingRenderDeadLetterQueue"),
        "gateway_key": one("AWS::SecretsManager::Secret", "GatewayKey"),
        "signing_key": one("AWS::SecretsManager::Secret", "SigningKey"),
    }


def _objects(ids: dict[str, str], prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [ids["bucket"], "Arn"]}, f"/{prefix}*"]]}


def _table(ids: dict[str, str]) -> dict[str, Any]:
    return {"Fn::GetAtt": [ids["table"], "Arn"]}


def _index(ids: dict[str, str], name: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [_table(ids), f"/index/{name}"]]}


def _stmt(actions: list[str] | str, resource: Any, sid: str | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Action": actions, "Effect": "Allow", "Resource": resource}
    if sid:
        statement["Sid"] = sid
    return statement


def _default_bus() -> dict[str, Any]:
    """The account's default event bus in the stack's own partition, region and account."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":events:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":event-bus/{c.EVENT_BUS_NAME}",
            ],
        ]
    }


def _list_under(ids: dict[str, str], *prefixes: str) -> dict[str, Any]:
    """ListBucket on the bucket, only for listings under the prefixes the function reads."""
    statement = _stmt("s3:ListBucket", {"Fn::GetAtt": [ids["bucket"], "Arn"]}, "SeeMissingKeys")
    statement["Condition"] = {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}
    return statement


def _rendering_policies(ids: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """What output profiles add: masters and normalised copies (work prefix), render requests."""
    uploads, cutouts, failed = DEFAULTS["input_prefix"], DEFAULTS["output_prefix"], DEFAULTS["failure_prefix"]
    work = DEFAULTS["work_prefix"]
    masters, normalised = f"{work}masters/", f"{work}normalised/"
    render_queue = {"Fn::GetAtt": [ids["render_queue"], "Arn"]}
    master_actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]

    def see_work(*prefixes: str) -> dict[str, Any]:
        statement = _list_under(ids, *prefixes)
        statement["Sid"] = "SeeMissingWork"
        return statement

    request = _stmt("sqs:SendMessage", render_queue, "RequestRendering")
    return {
        "Submit": [
            _stmt("s3:GetObject", [_objects(ids, normalised), _objects(ids, masters)], "ReadWork"),
            request,
            see_work(normalised, masters),
        ],
        "Webhook": [_stmt(master_actions, _objects(ids, masters), "WriteMasters"), request, see_work(masters)],
        "Reconcile": [
            _stmt(master_actions, _objects(ids, masters), "WriteMasters"),
            request,
            _stmt("s3:GetObject", _objects(ids, normalised), "ReadNormalisedInputs"),
            # Sweeps the render dead-letter queue into failure reports (cutouts.render_dead_letters).
            _stmt(
                ["sqs:ReceiveMessage", "sqs:GetQueueAttributes", "sqs:DeleteMessage"],
                {"Fn::GetAtt": [ids["render_dlq"], "Arn"]},
                "InspectRenderDeadLetters",
            ),
            see_work(normalised, masters),
        ],
        "Render": [
            # Added by the render queue's event source mapping, on that queue only.
            _stmt(
                [
                    "sqs:ReceiveMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueUrl",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ],
                render_queue,
            ),
            _stmt(["s3:GetObject", "s3:GetObjectVersion"], _objects(ids, uploads), "ReadUploads"),
            _stmt(["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], _objects(ids, work), "WorkObjects"),
            _stmt(["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], _objects(ids, cutouts), "WriteOutputs"),
            _stmt(["s3:PutObject", "s3:DeleteObject"], _objects(ids, failed), "WriteFailureReports"),
            _list_under(ids, uploads, work, cutouts),
            _stmt(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], _table(ids), "JobTable"),
            _stmt("sqs:SendMessage", {"Fn::GetAtt": [ids["queue"], "Arn"]}, "ReturnPreparedUploads"),
        ],
    }


def expected_policies(ids: dict[str, str], log_groups: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    policies = _base_policies(ids, log_groups)
    for name, statements in _rendering_policies(ids).items():
        policies[name] = policies.get(name, []) + statements
    return policies


def _base_policies(ids: dict[str, str], log_groups: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    secrets = [{"Ref": ids["gateway_key"]}, {"Ref": ids["signing_key"]}]
    xray = _stmt(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*")
    uploads, cutouts, failed = DEFAULTS["input_prefix"], DEFAULTS["output_prefix"], DEFAULTS["failure_prefix"]
    cutout_actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]

    # Completion events: on the default bus only, and only as the source "cutouts".
    put_events = _stmt("events:PutEvents", _default_bus(), "PutCompletionEvents")
    put_events["Condition"] = {"StringEquals": {"events:source": c.EVENT_SOURCE}}

    def logs(name: str) -> dict[str, Any]:
        return _stmt(
            ["logs:CreateLogStream", "logs:PutLogEvents"], {"Fn::GetAtt": [log_groups[name], "Arn"]}, "WriteOwnLogs"
        )

    return {
        "Submit": [
            logs("Submit"),
            xray,
            # Added by the SQS event source mapping (what Lambda polling needs), on the queue only.
            _stmt(
                [
                    "sqs:ReceiveMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueUrl",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ],
                {"Fn::GetAtt": [ids["queue"], "Arn"]},
            ),
            _stmt(["s3:GetObject", "s3:GetObjectVersion"], _objects(ids, uploads), "ReadUploads"),
            _stmt(cutout_actions, _objects(ids, cutouts), "WriteCutouts"),
            # Reads sources (source-deleted) and HEADs a twin's cutout (de-duplication).
            _list_under(ids, uploads, cutouts),
            _stmt(["s3:PutObject", "s3:DeleteObject"], _objects(ids, failed), "WriteFailureReports"),
            _stmt(
                ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
                [_table(ids), _index(ids, c.CONTENT_INDEX_NAME)],
                "JobTable",
            ),
            _stmt("secretsmanager:GetSecretValue", secrets, "ReadSecrets"),
            _stmt("sqs:ChangeMessageVisibility", {"Fn::GetAtt": [ids["queue"], "Arn"]}, "DelayRetries"),
            put_events,
        ],
        "Webhook": [
            logs("Webhook"),
            xray,
            _stmt(cutout_actions, _objects(ids, cutouts), "WriteCutouts"),
            # HEADs cutouts (a twin's, or the key's own before a report names it as earlier).
            _list_under(ids, cutouts),
            _stmt(["s3:PutObject", "s3:DeleteObject"], _objects(ids, failed), "WriteFailureReports"),
            _stmt(
                ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
                [_table(ids), _index(ids, c.CONTENT_INDEX_NAME)],
                "JobTable",
            ),
            _stmt("secretsmanager:GetSecretValue", secrets, "ReadSecrets"),
            put_events,
        ],
        "Render": [logs("Render"), xray, put_events],
        "Reconcile": [
            logs("Reconcile"),
            xray,
            _stmt(["s3:GetObject", "s3:GetObjectVersion"], _objects(ids, uploads), "ReadUploads"),
            # Presigns sources again for resubmission: a deleted source must answer 404, not 403.
            _list_under(ids, uploads, cutouts),
            _stmt(cutout_actions, _objects(ids, cutouts), "WriteCutouts"),
            _stmt(["s3:PutObject", "s3:DeleteObject"], _objects(ids, failed), "WriteFailureReports"),
            _stmt(
                ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:Query"],
                [
                    _table(ids),
                    _index(ids, c.STATUS_INDEX_NAME),
                    _index(ids, c.CONTENT_INDEX_NAME),
                    _index(ids, c.EVENTS_INDEX_NAME),
                ],
                "JobTable",
            ),
            _stmt("secretsmanager:GetSecretValue", secrets, "ReadSecrets"),
            _stmt("sqs:SendMessage", {"Fn::GetAtt": [ids["queue"], "Arn"]}, "RequeueStrandedUploads"),
            _stmt(
                ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:DeleteMessage"],
                {"Fn::GetAtt": [ids["dlq"], "Arn"]},
                "InspectDeadLetters",
            ),
            put_events,
        ],
    }


def _canonical(statements: list[dict[str, Any]]) -> list[str]:
    """Statements compared as IAM reads them: the order of actions and resources means nothing
    (the minimizePolicies feature flag sorts them)."""

    def actions_sorted(statement: dict[str, Any]) -> dict[str, Any]:
        return {
            name: sorted(value, key=lambda v: json.dumps(v, sort_keys=True))
            if name in ("Action", "Resource") and isinstance(value, list)
            else value
            for name, value in statement.items()
        }

    return sorted(json.dumps(actions_sorted(s), sort_keys=True) for s in statements)


@pytest.mark.parametrize("name", ["Submit", "Webhook", "Reconcile", "Render"])
def test_role_policy_is_exactly_what_the_function_does(template_json: dict[str, Any], name: str) -> None:
    res = template_json["Resources"]
    ids = _ids(template_json)
    log_groups = {
        n: next(k for k, v in res.items() if v["Type"] == "AWS::Logs::LogGroup" and k.startswith(f"{n}Logs"))
        for n in ("Submit", "Webhook", "Reconcile", "Render")
    }
    # Given the role of the function
    (role_id,) = [k for k, v in res.items() if v["Type"] == "AWS::IAM::Role" and k.startswith(f"{name}Role")]
    # Then its only policy holds exactly the expected statements
    policies = [
        v for v in res.values() if v["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in v["Properties"]["Roles"]
    ]
    assert len(policies) == 1
    actual = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    assert _canonical(actual) == _canonical(expected_policies(ids, log_groups)[name])
    # And the role has no managed policy and no inline policies of its own
    role = res[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]


def test_no_policy_in_the_stack_grants_an_action_wildcard(template_json: dict[str, Any]) -> None:
    for key, value in template_json["Resources"].items():
        if value["Type"] != "AWS::IAM::Policy":
            continue
        for statement in value["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any("*" in a for a in actions), (key, actions)


def test_missing_keys_answer_404_to_the_functions_that_read_them(template: Template) -> None:
    # Given S3 answers a GET/HEAD of a missing key with 403 unless the caller may list the bucket,
    # Then submit and reconcile (sources, cutouts) and the webhook (cutouts) may list, but only
    # under the prefixes they read
    uploads, cutouts = DEFAULTS["input_prefix"], DEFAULTS["output_prefix"]
    for prefixes in ([uploads + "*", cutouts + "*"], [cutouts + "*"]):
        template.has_resource_properties(
            "AWS::IAM::Policy",
            {
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            {
                                "Sid": "SeeMissingKeys",
                                "Effect": "Allow",
                                "Action": "s3:ListBucket",
                                "Resource": {"Fn::GetAtt": [Match.string_like_regexp("^StorageBucket"), "Arn"]},
                                "Condition": {"StringLike": {"s3:prefix": prefixes}},
                            }
                        ]
                    )
                }
            },
        )


def test_listing_follows_configured_prefixes(synth: Any) -> None:
    # Given other prefixes
    _, _, template = synth({"inputPrefix": "in/", "outputPrefix": "out/", "failurePrefix": "bad/"})
    # Then the listing condition follows them
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Condition": {"StringLike": {"s3:prefix": ["in/*", "out/*"]}}})]
                )
            }
        },
    )
