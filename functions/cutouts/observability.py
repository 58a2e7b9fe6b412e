"""Logger, tracer and metrics: one instance each, the same on every handler."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from cutouts.constants import METRIC_FAILED, METRICS_NAMESPACE, SERVICE_NAME

# The stack sets both per stage (cutouts.constants.metrics_namespace / service_name); the bare
# names stand outside a stack. single_metric below must name them too, so they are read here once.
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE_NAME

logger = Logger(service=SERVICE)
# Trace only what we call: AWS through botocore, the gateway and media hosts through http.client
# (urllib3). Patching everything the X-Ray SDK knows would import requests and more at cold start.
tracer = Tracer(service=SERVICE, patch_modules=("botocore", "httplib"))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class PowertoolsRecorder:
    """The use cases' MetricsSink, written as CloudWatch embedded metrics."""

    def count(self, name: str, value: float = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def seconds(self, name: str, value: float) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)

    def failure(self, reason: str) -> None:
        metrics.add_metric(name=METRIC_FAILED, unit=MetricUnit.Count, value=1)
        if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
            return  # single_metric prints even when metrics are disabled (local stack)
        with single_metric(
            name=METRIC_FAILED,
            unit=MetricUnit.Count,
            value=1,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE},
        ) as metric:
            metric.add_dimension(name="reason", value=reason)
        logger.warning("job failed", reason=reason)
