"""The one way this project creates a Lambda function, and the three functions it creates."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jsii
from aws_cdk import (
    Acknowledgment,
    Annotations,
    AssetHashType,
    BundlingOptions,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cutouts import constants as c
from infra.config import StackConfig
from infra.nag import SERVERLESS_LAMBDA_DLQ_REASON
from infra.packaging import ASSET_EXCLUDES, RUNTIME_PYTHON, build_package

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
# 256 MB: the functions stream images instead of holding them; to be confirmed by benchmarks.
MEMORY_MB = 256
# The submit function's time-out follows from its batch size and settings: cutouts/submit_budget.py.
# Below API Gateway's 30 s integration limit, so the gateway always gets an answer.
WEBHOOK_TIMEOUT = Duration.seconds(29)
RECONCILE_TIMEOUT = Duration.seconds(120)


_RETENTION_NAMES = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip


def log_retention(days: int) -> logs.RetentionDays:
    """CloudWatch retention for a validated number of days (infra.config checks the set)."""
    return logs.RetentionDays[_RETENTION_NAMES[days]]


def stack_log_group(scope: Construct, construct_id: str, config: StackConfig) -> logs.LogGroup:
    """A log group kept as long as the stage keeps its logs, and kept with the data in prod."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=log_retention(config.log_retention_days),
        removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
    )


@jsii.implements(ILocalBundling)
class LocalPackageBundler:
    """CDK's local bundling hook: ``build_package`` on this machine, so Docker is never needed."""

    def __init__(self, source: Path, python: str | None) -> None:
        self.source, self.python = source, python

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        build_package(self.source, Path(output_dir), self.python)
        return True


def functions_code(scope: Construct, code_dir: Path, python: str | None) -> lambda_.Code:
    """One asset for all three functions: the `cutouts` package; dependencies come from infra.layers.

    Built locally by ``infra.packaging``, with bytecode when ``python`` (the runtime's version) is
    given. The asset hash follows the source and whether bytecode was added, not the build's bytes.
    """
    if python is None:
        Annotations.of(scope).add_info(
            f"No Python {RUNTIME_PYTHON} found: the functions ship as source, without bytecode "
            "(correct, but each cold start compiles them: 7-17 ms measured). Install it (e.g. pyenv) to ship bytecode."
        )
    return lambda_.Code.from_asset(
        str(code_dir),
        exclude=ASSET_EXCLUDES,
        asset_hash_type=AssetHashType.SOURCE,
        bundling=BundlingOptions(
            image=RUNTIME.bundling_image,
            # jsii hands try_bundle the options as one struct; the typed stub spells them out as keywords
            local=LocalPackageBundler(code_dir, python),  # type: ignore[arg-type]
            environment={"CUTOUTS_BYTECODE": f"cpython-{RUNTIME_PYTHON}" if python else "none"},
        ),
    )


class CutoutsFunction(Construct):
    """A function with our runtime, architecture, layer, log group, tracing and Powertools settings.

    The role is created here without AWSLambdaBasicExecutionRole (which allows writing to
    every log group in the account): it may write only to this function's own log group.
    Everything else the function does is added by the caller, statement by statement.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        handler: str,
        timeout: Duration,
        description: str,
        environment: Mapping[str, str],
        reserved_concurrency: int | None = None,
        memory_size: int = MEMORY_MB,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = stack_log_group(self, "Logs", config)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description} (least privilege)",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=code,
            handler=handler,
            layers=[layer],
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency,
            description=description,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                # Per stage: infra/observability.py reads each stage's own metrics.
                "POWERTOOLS_SERVICE_NAME": c.service_name(config.stage),
                "POWERTOOLS_METRICS_NAMESPACE": c.metrics_namespace(config.stage),
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **environment,
            },
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments/PutTelemetryRecords (added by tracing=ACTIVE) support no "
                "resource-level permissions; '*' is the only valid resource.",
            )
        )
        runtime_reason = (
            "Pinned to python3.13: the asset's bytecode and the layers' wheels and bytecode (infra/layers.py) "
            "are built for 3.13; the runtime moves together with them."
        )
        Validations.of(self.function).acknowledge(
            Acknowledgment(id="AwsSolutions-L1", reason=runtime_reason),
            Acknowledgment(id="Serverless-LambdaLatestVersion", reason=runtime_reason),
            Acknowledgment(id="Serverless-LambdaDLQ", reason=SERVERLESS_LAMBDA_DLQ_REASON[construct_id]),
        )

    def allow(
        self,
        sid: str,
        actions: list[str],
        resources: list[str],
        conditions: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        """Add one hand-written statement to the role (never a grant_* wildcard)."""
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid=sid,
                actions=actions,
                resources=resources,
                conditions=dict(conditions) if conditions else None,
            )
        )
