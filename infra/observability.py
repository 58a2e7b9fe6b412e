"""Alarms (to an SNS topic) and a dashboard that shows the flow at a glance."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cutouts import constants as c
from infra.config import StackConfig

PERIOD = Duration.minutes(5)
# Oldest upload waiting this long means the submit side is stuck or throttled hard.
OLDEST_MESSAGE_ALARM_SECONDS = 900


def app_metric(name: str, stage: str, statistic: str = "Sum", label: str | None = None) -> cw.Metric:
    """A Powertools metric of one stage: the namespace and service its functions emit under.

    Per stage, so dev's failures never fire prod's alarms when both share an account and region.
    """
    return cw.Metric(
        namespace=c.metrics_namespace(stage),
        metric_name=name,
        dimensions_map={"service": c.service_name(stage)},
        statistic=statistic,
        period=PERIOD,
        label=label,
    )


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        functions: Mapping[str, lambda_.Function],
        api: apigwv2.HttpApi,
    ) -> None:
        super().__init__(scope, construct_id)
        self._stage = config.stage
        # CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key,
        # so the topic gets its own key that allows CloudWatch to use it.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Cutouts: encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self.topic = sns.Topic(self, "AlarmTopic", display_name="Cutouts alarms", master_key=key, enforce_ssl=True)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        if config.alarm_email:
            subscription = self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
            Validations.of(subscription).acknowledge(
                Acknowledgment(
                    id="Serverless-SNSRedrivePolicy",
                    reason="An e-mail subscription for alarm notices: an undeliverable e-mail has nothing to "
                    "replay, and the alarm state stays visible in CloudWatch and on the dashboard.",
                )
            )
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cw.Alarm] = {}

        # Not on the dead-letter queue's depth: the reconciler's sweep re-receives dead letters without
        # deleting them (it writes their reports), so depth and age stay up, and move, for the queue's
        # whole retention. The sweep counts each dead letter it reports for the first time instead,
        # so the alarm fires for the period a new one appears and is OK again after it.
        self._alarm(
            "DeadLetters",
            self._app_metric(c.METRIC_DEAD_LETTERS_REPORTED),
            "New uploads reached the dead-letter queue (each got a dead-lettered report): they failed "
            "submission repeatedly. Inspect the messages and the submit function's logs, fix the cause, "
            "then redrive. Render requests swept from the render dead-letter queue count here too "
            "(prepare-failed, render-dead-lettered reports): see the render function's logs.",
            threshold=1,
            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        self._alarm(
            "OldestUpload",
            queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(1), statistic="Maximum"),
            f"An upload has waited over {OLDEST_MESSAGE_ALARM_SECONDS} s in the queue: submit is failing, "
            "throttled by the gateway (429) or capped too low (maxConcurrency).",
            threshold=OLDEST_MESSAGE_ALARM_SECONDS,
            evaluation_periods=3,
        )
        for name, fn in functions.items():
            self._alarm(
                f"{name}Errors",
                fn.metric_errors(period=PERIOD, statistic="Sum"),
                f"The {name.lower()} function raised errors (time-outs, crashes, whole-batch failures). "
                "Read its log group.",
            )
            cfn = fn.node.default_child
            reserved = cfn.reserved_concurrent_executions if isinstance(cfn, lambda_.CfnFunction) else None
            self._alarm(
                f"{name}Throttles",
                fn.metric_throttles(period=PERIOD, statistic="Sum"),
                f"The {name.lower()} function was throttled: "
                + (
                    f"more than its reserved concurrency ({reserved}) ran at once (a callback flood, or slow "
                    "callbacks); refused callbacks are retried by the gateway and finished by the reconciler."
                    if reserved
                    else "the account's concurrency is exhausted."
                ),
            )
        self._alarm(
            "GatewayAuthErrors",
            self._app_metric(c.METRIC_GATEWAY_AUTH_ERRORS),
            "The gateway answered 401/403: the API key in the gateway key secret is missing, wrong or "
            "revoked. Put a valid key in the secret.",
        )
        self._alarm(
            "GatewayInsufficientBalance",
            self._app_metric(c.METRIC_GATEWAY_BALANCE_ERRORS),
            "The gateway answered 402: the account balance is exhausted. Top it up; affected images "
            "have failure reports and can be re-uploaded.",
        )
        self._alarm(
            "StuckJobsFailed",
            self._app_metric(c.METRIC_STUCK_JOBS_FAILED),
            "The reconciler failed jobs older than the maximum job age: callbacks are not arriving and the "
            "status endpoint did not finish them. Check the gateway and the callback API.",
        )
        self._alarm(
            "ReconcileJobErrors",
            self._app_metric(c.METRIC_RECONCILE_JOB_ERRORS),
            "The reconciler could not handle some jobs in a pass (it goes on with the others and tries "
            "them again next pass). Read the reconcile function's log group for the job ids and errors.",
        )
        self._alarm(
            "EventsFailed",
            self._app_metric(c.METRIC_EVENTS_FAILED),
            "Completion events could not be put on the default EventBridge bus for three periods in a row "
            "(PutEvents failed or refused entries). Cutouts and jobs are safe and each reconcile pass resends "
            "the pending events; check EventBridge's health and the functions' events:PutEvents permission.",
            evaluation_periods=3,
        )

        self._spend_alarms(config)

        # Dashboards are global to an account: the same stage in a second region needs its own name.
        self.dashboard_name = f"Cutouts-{config.stage}-{Aws.REGION}"
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=self.dashboard_name)
        self._widgets(queue, dead_letter_queue, functions, api)

    def _app_metric(self, name: str, statistic: str = "Sum", label: str | None = None) -> cw.Metric:
        return app_metric(name, self._stage, statistic, label)

    def _spend_alarms(self, config: StackConfig) -> None:
        """The spend guard: 80 % of the day's budget (a warning), the budget reached, a key in a loop."""
        budget = config.daily_budget_usd
        # The reconciler reads the day's spend every pass; 80 % of a budget of 0 is never reached.
        self._alarm(
            "DailySpend80Percent",
            self._app_metric(c.METRIC_SPEND_TODAY_USD, "Maximum"),
            f"Today's gateway spend passed 80 % of dailyBudgetUsd (${budget:g}). At 100 % new images are "
            "parked, not failed. If this volume is expected, raise dailyBudgetUsd; if not, look for a sync job "
            "or backfill gone wrong (status shows the spend and the parked jobs).",
            threshold=max(0.8 * budget, config.price_per_image_usd),
            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        self._alarm(
            "BudgetReached",
            self._app_metric(c.METRIC_JOBS_PARKED),
            f"The spend budget is reached (dailyBudgetUsd ${budget:g}"
            + (f", monthlyBudgetUsd ${config.monthly_budget_usd:g}" if config.monthly_budget_usd else "")
            + "): new images are PARKED, not paid and not failed; they resume by themselves, oldest first, when "
            "the next UTC day (or month) opens. To process them sooner: find out why the volume is high "
            "(`python -m cutouts_cli status`), raise the budget context value and deploy, then run "
            "`python -m cutouts_cli resume`. If the volume is a mistake, leave them parked (or delete the uploads).",
            threshold=1,
            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        self._alarm(
            "UploadLoops",
            self._app_metric(c.METRIC_UPLOAD_LOOPS),
            "A key was uploaded more than maxVersionsPerKeyPerDay times today: something re-uploads it in a loop. "
            "Its further uploads today are not submitted (upload-loop reports under the failure prefix name the "
            "keys). Stop the process that writes them.",
            threshold=1,
            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        description: str,
        *,
        threshold: float = 0,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods: int = 1,
    ) -> None:
        alarm = cw.Alarm(
            self,
            f"{name}Alarm",
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[name] = alarm

    def _widgets(
        self,
        queue: sqs.IQueue,
        dlq: sqs.IQueue,
        functions: Mapping[str, lambda_.Function],
        api: apigwv2.HttpApi,
    ) -> None:
        def percentiles(name: str) -> list[cw.IMetric]:
            return [self._app_metric(name, "p50", f"{name} p50"), self._app_metric(name, "p90", f"{name} p90")]

        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Jobs",
                left=[
                    self._app_metric(c.METRIC_SUBMITTED),
                    self._app_metric(c.METRIC_COMPLETED),
                    self._app_metric(c.METRIC_FAILED),
                    self._app_metric(c.METRIC_STUCK_JOBS_FAILED),
                    self._app_metric(c.METRIC_DEAD_LETTERS_REPORTED),
                    self._app_metric(c.METRIC_RECONCILE_JOB_ERRORS),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Duplicates skipped / gateway calls saved",
                left=[self._app_metric(c.METRIC_DUPLICATES_SKIPPED), self._app_metric(c.METRIC_GATEWAY_CALLS_SAVED)],
                width=8,
            ),
            cw.GraphWidget(
                title="Gateway errors / rejected callbacks",
                left=[
                    self._app_metric(c.METRIC_GATEWAY_AUTH_ERRORS),
                    self._app_metric(c.METRIC_GATEWAY_BALANCE_ERRORS),
                    self._app_metric(c.METRIC_CALLBACKS_REJECTED),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="End-to-end seconds", left=percentiles(c.METRIC_END_TO_END_SECONDS), width=8),
            cw.GraphWidget(title="Gateway seconds", left=percentiles(c.METRIC_GATEWAY_SECONDS), width=8),
            cw.GraphWidget(
                title="Queue depth / dead letters",
                left=[
                    queue.metric_approximate_number_of_messages_visible(label="queue visible"),
                    queue.metric_approximate_number_of_messages_not_visible(label="queue in flight"),
                    dlq.metric_approximate_number_of_messages_visible(label="dead letters"),
                ],
                # The dead-letter queue's depth and age are shown, not alarmed (see DeadLetters).
                right=[
                    queue.metric_approximate_age_of_oldest_message(label="oldest upload (s)"),
                    dlq.metric_approximate_age_of_oldest_message(label="oldest dead letter (s)"),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Function errors / throttles",
                left=[fn.metric_errors(label=f"{name} errors") for name, fn in functions.items()],
                right=[fn.metric_throttles(label=f"{name} throttles") for name, fn in functions.items()],
                width=8,
            ),
            cw.GraphWidget(
                title="Function duration p90 (ms)",
                left=[fn.metric_duration(statistic="p90", label=f"{name} p90") for name, fn in functions.items()],
                width=8,
            ),
            cw.GraphWidget(
                title="Callback API",
                left=[
                    api.metric_count(label="requests"),
                    api.metric_client_error(label="4xx"),
                    api.metric_server_error(label="5xx"),
                ],
                right=[api.metric_integration_latency(statistic="p90", label="integration latency p90")],
                width=8,
            ),
        )
        day = Duration.days(1)
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Spend per day (USD)",
                left=[
                    self._app_metric(c.METRIC_SPEND_TODAY_USD, "Maximum", "spend per UTC day").with_(period=day),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Spend guard: parked, resumed, loops",
                left=[
                    self._app_metric(c.METRIC_JOBS_PARKED),
                    self._app_metric(c.METRIC_JOBS_RESUMED),
                    self._app_metric(c.METRIC_UPLOAD_LOOPS),
                ],
                right=[self._app_metric(c.METRIC_PARKED_WAITING, "Maximum", "parked jobs waiting")],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24),
        )
