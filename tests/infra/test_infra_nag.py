"""cdk-nag (AwsSolutions + Serverless packs) reports nothing unacknowledged; cfn-lint passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from synth_kit import make_app

import app as cdk_app

# cfn-lint warnings we accept, each with the reason. Anything else fails the test.
CFN_LINT_IGNORED = {
    # CDK's Function adds an explicit DependsOn on its role and default policy (so the policy exists
    # before the function is invoked); the role's GetAtt already implies the first. Harmless, CDK-made.
    # The same comes from the S3 notifications resource's DependsOn on the queue policy's queue.
    "W3005": "redundant DependsOn emitted by aws-cdk-lib constructs",
}


def _findings(report_path: Path) -> list[str]:
    report = json.loads(report_path.read_text())
    found = []
    for plugin in report["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation.get("violatingConstructs", []) + violation.get("violatingResources", []):
                where = construct.get("constructPath") or construct.get("resourceLogicalId")
                found.append(f"{violation['ruleName']} at {where}")
    return found


def _synth_with_checks(context: dict[str, Any], outdir: Path) -> list[str]:
    app, _ = cdk_app.build_app(make_app(context, outdir=str(outdir)), nag=True)
    try:
        app.synth()
    except RuntimeError as error:  # validation failure: report written to outdir
        if "Validation failed" not in str(error) and "ValidationFailed" not in str(error):
            raise
        return _findings(outdir / "validation-report.json")
    return []


@pytest.mark.parametrize(
    "context",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {
                "stage": "prod",
                "bucketName": "existing-images",
                "gatewayKeySecretName": "team/pixazo-key",
                "alarmEmail": "ops@example.com",
            },
            id="prod-existing-bucket-and-secret",
        ),
    ],
)
def test_no_unacknowledged_nag_findings(context: dict[str, Any], tmp_path: Path) -> None:
    # When the app synthesizes with the AwsSolutions and Serverless packs
    findings = _synth_with_checks(context, tmp_path)
    # Then nothing is reported: every accepted finding is acknowledged on its resource with a reason
    assert findings == [], "\n".join(findings)


def test_cfn_lint_passes(tmp_path: Path) -> None:
    from cfnlint.api import lint

    app, stack = cdk_app.build_app(make_app({}, outdir=str(tmp_path)), nag=False)
    app.synth()
    template = (tmp_path / stack.template_file).read_text()
    matches = lint(template, regions=["us-east-1", "eu-west-1"])
    unexplained = [
        f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches if m.rule.id not in CFN_LINT_IGNORED
    ]
    assert unexplained == [], "\n".join(unexplained)
    # No error-level finding may be ignored.
    assert not [m for m in matches if m.rule.id.startswith("E")]


def test_a_new_finding_fails_the_check(tmp_path: Path) -> None:
    # Given the stack plus a queue without a dead-letter queue or TLS enforcement
    from aws_cdk import aws_sqs as sqs

    app, stack = cdk_app.build_app(make_app({}, outdir=str(tmp_path)), nag=True)
    sqs.Queue(stack, "Unreviewed")
    # When it synthesizes with the checks
    try:
        app.synth()
        findings: list[str] = []
    except RuntimeError:
        findings = _findings(tmp_path / "validation-report.json")
    # Then the finding is reported against that queue
    assert any("Unreviewed" in f and "AwsSolutions-SQS" in f for f in findings), findings
