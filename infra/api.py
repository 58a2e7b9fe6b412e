"""The public HTTP API the gateway calls back: one route, throttled, access-logged."""

from __future__ import annotations

import json

import jsii
from aws_cdk import Acknowledgment, Aws, Fn, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cutouts import constants as c
from infra.config import StackConfig
from infra.functions import log_retention

# CloudWatch Logs puts every log group a vended (service-delivered) log writes to into the
# account's one resource policy, which is capped at 5,120 characters, unless the group's name
# starts with this prefix. Busy accounts hit the cap and `cdk deploy` fails with "Cannot enable
# logging. Policy document length breaking Cloudwatch Logs Constraints".
VENDED_LOGS_PREFIX = "/aws/vendedlogs/"

# Access log line. The callback token travels in the query string, so nothing that could
# carry the query is logged: $context.path is the path only, and no full URL, request
# override or header is included.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
}


class CallbackApi(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, webhook: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        method, path = c.CALLBACK_ROUTE.split(" ", 1)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=access_log_group_name(Stack.of(self).stack_name),
            retention=log_retention(config.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        self.api = apigwv2.HttpApi(
            self,
            "HttpApi",
            description="Cutouts: gateway webhook callbacks",
            create_default_stage=False,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            auto_deploy=True,
            # Sized from the pipeline, not the internet: rate = what submit can cause, burst = what
            # the webhook's reserved concurrency can start at once (formula in infra/config.py).
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.callback_rate_limit, burst_limit=config.callback_burst_limit
            ),
            access_log_settings=_AccessLogSettings(self.access_logs),
        )
        routes = self.api.add_routes(
            path=path,
            methods=[apigwv2.HttpMethod(method)],
            integration=integrations.HttpLambdaIntegration("Webhook", webhook),
        )
        for route in routes:
            Validations.of(route).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-APIG4",
                    reason="The gateway cannot send authorization headers; each callback URL carries the job "
                    "id and an HMAC token that the webhook function verifies before any side effect.",
                )
            )

    @property
    def url(self) -> str:
        """https://<id>.execute-api.<region>.amazonaws.com, no trailing slash ($default stage)."""
        return self.api.api_endpoint


def access_log_group_name(stack_name: str) -> str:
    """Under /aws/vendedlogs/, unique per stack instance (log groups are regional already).

    The stack id's UUID is part of the name: a retaining stage keeps its group after
    `cdk destroy`, and a fresh deployment of the same stage must not collide with it.
    """
    stack_uuid = Fn.select(2, Fn.split("/", Aws.STACK_ID))
    return f"{VENDED_LOGS_PREFIX}apigateway/{stack_name}-{stack_uuid}/callback-api-access"


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """IAccessLogSettings for an HTTP API stage: our log group and JSON format."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")))
