"""Alarms to an encrypted SNS topic and a dashboard with the flow at a glance."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match, Template

from cutouts import constants as c


def _alarms(template_json: dict[str, Any]) -> list[dict[str, Any]]:
    return [v["Properties"] for v in template_json["Resources"].values() if v["Type"] == "AWS::CloudWatch::Alarm"]


def test_alarm_topic_is_encrypted_and_tls_only(template: Template) -> None:
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_email_subscription_only_when_configured(template: Template, synth: Any) -> None:
    template.resource_count_is("AWS::SNS::Subscription", 0)
    _, _, with_email = synth({"alarmEmail": "ops@example.com"})
    with_email.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"})


def test_every_alarm_notifies_the_topic(template_json: dict[str, Any]) -> None:
    (topic_id,) = [k for k, v in template_json["Resources"].items() if v["Type"] == "AWS::SNS::Topic"]
    alarms = _alarms(template_json)
    assert len(alarms) == 19  # + the render function's errors and throttles, + render dead letters
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmDescription"]


def test_alarms_on_dead_letters_oldest_upload_errors_and_throttles(template_json: dict[str, Any]) -> None:
    alarms = _alarms(template_json)
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms:
        by_metric.setdefault(alarm.get("MetricName", ""), []).append(alarm)
    # No alarm on the DLQ's depth or age: the reconciler's sweep re-receives dead letters without
    # deleting them, so those stay high (and move) for the queue's whole retention.
    # The render dead-letter queue is read by no one but operators: its depth is what to alarm on.
    (render_dead_letters,) = by_metric["ApproximateNumberOfMessagesVisible"]
    assert "RenderDeadLetterQueue" in json.dumps(render_dead_letters["Dimensions"])
    (oldest,) = by_metric["ApproximateAgeOfOldestMessage"]
    assert "UploadQueue" in json.dumps(oldest["Dimensions"])
    assert len(by_metric["Errors"]) == 4 and len(by_metric["Throttles"]) == 4
    for alarm in by_metric["Errors"] + by_metric["Throttles"]:
        assert alarm["Namespace"] == "AWS/Lambda" and alarm["Threshold"] == 0


def test_dead_letters_alarm_fires_once_per_newly_reported_dead_letter(template: Template) -> None:
    # Given the reconciler emits DeadLettersReported once per dead letter it reports for the first time
    # Then the alarm counts those, not the queue's depth, and an empty period is OK
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": c.METRIC_DEAD_LETTERS_REPORTED,
            "Namespace": c.metrics_namespace("dev"),
            "Dimensions": [{"Name": "service", "Value": c.service_name("dev")}],
            "Statistic": "Sum",
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
            "AlarmDescription": Match.string_like_regexp("dead-letter"),
        },
    )


def test_alarms_on_gateway_auth_balance_and_stuck_jobs(template_json: dict[str, Any]) -> None:
    alarms = {a.get("MetricName"): a for a in _alarms(template_json)}
    for metric in (
        c.METRIC_GATEWAY_AUTH_ERRORS,
        c.METRIC_GATEWAY_BALANCE_ERRORS,
        c.METRIC_STUCK_JOBS_FAILED,
        c.METRIC_RECONCILE_JOB_ERRORS,
    ):
        alarm = alarms[metric]
        # Powertools metrics carry the dimension service=<POWERTOOLS_SERVICE_NAME>.
        assert alarm["Namespace"] == c.metrics_namespace("dev")
        assert alarm["Dimensions"] == [{"Name": "service", "Value": c.service_name("dev")}]
        assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_dashboard_shows_the_flow(template_json: dict[str, Any]) -> None:
    (dashboard,) = [v for v in template_json["Resources"].values() if v["Type"] == "AWS::CloudWatch::Dashboard"]
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        c.METRIC_SUBMITTED,
        c.METRIC_COMPLETED,
        c.METRIC_FAILED,
        c.METRIC_DUPLICATES_SKIPPED,
        c.METRIC_END_TO_END_SECONDS,
        c.METRIC_GATEWAY_SECONDS,
        c.METRIC_DEAD_LETTERS_REPORTED,
        c.METRIC_RECONCILE_JOB_ERRORS,
        "ApproximateNumberOfMessagesVisible",
        "Errors",
        "Duration",
    ):
        assert metric in body, metric
    # The dead-letter queue's depth stays visible (without an alarm).
    assert "StorageDeadLetterQueue" in body
    assert '\\"stat\\":\\"p50\\"' in body and '\\"stat\\":\\"p90\\"' in body


def test_completion_events_that_keep_failing_raise_an_alarm(template_json: dict[str, Any]) -> None:
    # Given the synthesized stack, when completion events fail for three periods in a row
    alarm = {a.get("MetricName"): a for a in _alarms(template_json)}[c.METRIC_EVENTS_FAILED]
    # Then an alarm says the cutouts are safe and the reconciler resends
    assert alarm["Namespace"] == c.metrics_namespace("dev") and alarm["EvaluationPeriods"] == 3
    assert alarm["Threshold"] == 0 and "reconcile" in alarm["AlarmDescription"]


def test_the_spend_guard_alarms_at_80_percent_and_at_the_budget_and_on_upload_loops(synth: Any) -> None:
    # Given a stack with a daily budget of $100
    _, _, template = synth({"dailyBudgetUsd": 100})
    alarms = {a.get("MetricName"): a for a in _alarms(template.to_json())}
    # Then the day's spend alarms at 80 % of it
    eighty = alarms[c.METRIC_SPEND_TODAY_USD]
    assert eighty["Threshold"] == 80 and eighty["Statistic"] == "Maximum"
    assert eighty["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # And the first parked job (the budget reached) alarms, saying what to do
    reached = alarms[c.METRIC_JOBS_PARKED]
    assert reached["Threshold"] == 1 and reached["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    for words in ("PARKED", "next UTC day", "raise the budget", "cutouts_cli resume"):
        assert words in reached["AlarmDescription"], words
    # And a key uploaded in a loop alarms too; all three to the alarm topic, in the Powertools namespace
    loops = alarms[c.METRIC_UPLOAD_LOOPS]
    (topic_id,) = [k for k, v in template.to_json()["Resources"].items() if v["Type"] == "AWS::SNS::Topic"]
    for alarm in (eighty, reached, loops):
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Namespace"] == c.metrics_namespace("dev")


def test_dashboard_shows_spend_per_day(template_json: dict[str, Any]) -> None:
    (dashboard,) = [v for v in template_json["Resources"].values() if v["Type"] == "AWS::CloudWatch::Dashboard"]
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "Spend per day (USD)" in body and c.METRIC_SPEND_TODAY_USD in body
    assert '\\"period\\":86400' in body
