"""EventBridge schedule -> finish what callbacks did not, resubmit what the gateway dropped."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cutouts import runtime
from cutouts.observability import logger, metrics, tracer
from cutouts.reconciliation import reconcile

runtime.settings()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    counts = reconcile(runtime.services(), time.time(), remaining=lambda: context.get_remaining_time_in_millis() / 1000)
    logger.info("reconcile pass", extra={"counts": counts})
    return counts
