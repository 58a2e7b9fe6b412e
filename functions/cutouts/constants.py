"""Names shared by the stack, the functions, the local stack and the tests.

One place, so a rename cannot drift between the template and the code that reads it.
"""

from typing import Any, Final

# Settings (context keys, environment variables, defaults): cutouts/settings_table.py.

# DynamoDB job table: one item per source object version (pk = "job#<id>") and one per
# source key (pk = "key#<bucket>/<key>") holding the newest version seen.
TABLE_PARTITION_KEY: Final = "pk"
TABLE_TTL_ATTRIBUTE: Final = "expires_at"
STATUS_INDEX_NAME: Final = "by_status"
STATUS_INDEX_PARTITION_KEY: Final = "status"
STATUS_INDEX_SORT_KEY: Final = "updated_at"  # epoch seconds, number

# Handlers (module path relative to the functions/ asset).
SUBMIT_HANDLER: Final = "cutouts.handlers.submit.handler"
WEBHOOK_HANDLER: Final = "cutouts.handlers.webhook.handler"
RECONCILE_HANDLER: Final = "cutouts.handlers.reconcile.handler"
RENDER_HANDLER: Final = "cutouts.handlers.render.handler"
RENDER_BATCH_SIZE: Final = 1  # one image an invocation: the render function's memory is sized for one master

# HTTP API callback route: POST /callback/{job_id}?attempt=N&token=T
CALLBACK_PATH: Final = "/callback"
CALLBACK_ROUTE: Final = "POST /callback/{job_id}"

GATEWAY_STATUS_PATH: Final = "/v2/requests/status/"

# Metrics namespace and names. Deployed functions emit under their stage's namespace and service
# (metrics_namespace / service_name, set as POWERTOOLS_* variables by the stack), so two stages
# in one account and region never read each other's metrics; the bare names are the defaults
# outside a stack (tests, the local stack, benchmarks).
METRICS_NAMESPACE: Final = "Cutouts"
SERVICE_NAME: Final = "cutouts"


def metrics_namespace(stage: str) -> str:
    return f"{METRICS_NAMESPACE}/{stage}"


def service_name(stage: str) -> str:
    return f"{SERVICE_NAME}-{stage}"


METRIC_SUBMITTED: Final = "JobsSubmitted"
METRIC_COMPLETED: Final = "JobsCompleted"
METRIC_FAILED: Final = "JobsFailed"
METRIC_DUPLICATES_SKIPPED: Final = "DuplicatesSkipped"
METRIC_GATEWAY_CALLS_SAVED: Final = "GatewayCallsSaved"
METRIC_END_TO_END_SECONDS: Final = "EndToEndSeconds"
METRIC_GATEWAY_SECONDS: Final = "GatewaySeconds"
METRIC_GATEWAY_AUTH_ERRORS: Final = "GatewayAuthErrors"  # 401/403
METRIC_GATEWAY_BALANCE_ERRORS: Final = "GatewayInsufficientBalance"  # 402
METRIC_CALLBACKS_REJECTED: Final = "CallbacksRejected"
METRIC_STUCK_JOBS_FAILED: Final = "StuckJobsFailed"
METRIC_DEAD_LETTERS_REPORTED: Final = "DeadLettersReported"  # one per dead letter newly reported
METRIC_RECONCILE_JOB_ERRORS: Final = "ReconcileJobErrors"  # a job the reconciler could not handle this pass
# The spend guard (spend_guard.py).
METRIC_SPEND_TODAY_USD: Final = "SpendTodayUsd"  # the UTC day's reservations, as the reconciler reads them each pass
METRIC_SPEND_MONTH_USD: Final = "SpendThisMonthUsd"
METRIC_JOBS_PARKED: Final = "JobsParked"  # a job parked at the budget: the budget is reached
METRIC_PARKED_WAITING: Final = "ParkedJobsWaiting"  # parked jobs, counted each reconciler pass
METRIC_JOBS_RESUMED: Final = "JobsResumed"
METRIC_UPLOAD_LOOPS: Final = "UploadLoops"  # a key uploaded more than maxVersionsPerKeyPerDay times today

# Content de-duplication index: jobs with the same source bytes share one gateway call.
CONTENT_INDEX_NAME: Final = "by_content"
CONTENT_INDEX_PARTITION_KEY: Final = "content_hash"

# Sparse index of the jobs whose end's event is not on the bus yet (job_events; the reconciler retries).
EVENTS_INDEX_NAME: Final = "by_event_pending"
EVENTS_INDEX_PARTITION_KEY: Final = "event_pending"

# Completion events (job_events): put on the account's default EventBridge bus.
EVENT_SOURCE: Final = "cutouts"
EVENT_BUS_NAME: Final = "default"
METRIC_EVENTS_SENT: Final = "EventsSent"
METRIC_EVENTS_FAILED: Final = "EventsFailed"  # a PutEvents call or entry that failed: the reconciler retries

# The job table's key schema, as boto3 `create_table` keyword arguments (add TableName).
# The stack builds its table from these names and an infra test asserts the synthesized
# table matches this dict exactly, so the local stack, the tests and the cloud agree.
TABLE_SCHEMA: Final[dict[str, Any]] = {
    "AttributeDefinitions": [
        {"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"},
        {"AttributeName": STATUS_INDEX_PARTITION_KEY, "AttributeType": "S"},
        {"AttributeName": STATUS_INDEX_SORT_KEY, "AttributeType": "N"},
        {"AttributeName": CONTENT_INDEX_PARTITION_KEY, "AttributeType": "S"},
        {"AttributeName": EVENTS_INDEX_PARTITION_KEY, "AttributeType": "S"},
    ],
    "KeySchema": [{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": STATUS_INDEX_NAME,
            "KeySchema": [
                {"AttributeName": STATUS_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": STATUS_INDEX_SORT_KEY, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": CONTENT_INDEX_NAME,
            "KeySchema": [{"AttributeName": CONTENT_INDEX_PARTITION_KEY, "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": EVENTS_INDEX_NAME,
            "KeySchema": [
                {"AttributeName": EVENTS_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": STATUS_INDEX_SORT_KEY, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
    "BillingMode": "PAY_PER_REQUEST",
}

# CloudFormation stack: name and outputs (the CLI finds the stack by these output keys).
STACK_NAME_PREFIX: Final = "Cutouts-"
OUTPUT_BUCKET_NAME: Final = "BucketName"
OUTPUT_INPUT_LOCATION: Final = "InputLocation"
OUTPUT_OUTPUT_LOCATION: Final = "OutputLocation"
OUTPUT_FAILURE_LOCATION: Final = "FailureLocation"
OUTPUT_CALLBACK_BASE_URL: Final = "CallbackBaseUrl"
OUTPUT_GATEWAY_KEY_SECRET_ARN: Final = "GatewayKeySecretArn"
OUTPUT_SIGNING_SECRET_ARN: Final = "SigningSecretArn"
OUTPUT_TABLE_NAME: Final = "TableName"
OUTPUT_QUEUE_URL: Final = "QueueUrl"
OUTPUT_DLQ_URL: Final = "DeadLetterQueueUrl"
OUTPUT_ALARM_TOPIC_ARN: Final = "AlarmTopicArn"
OUTPUT_DASHBOARD_NAME: Final = "DashboardName"
OUTPUT_SUBMIT_FUNCTION_NAME: Final = "SubmitFunctionName"
OUTPUT_WEBHOOK_FUNCTION_NAME: Final = "WebhookFunctionName"
OUTPUT_RECONCILE_FUNCTION_NAME: Final = "ReconcileFunctionName"
OUTPUT_RENDER_FUNCTION_NAME: Final = "RenderFunctionName"
OUTPUT_RENDER_QUEUE_URL: Final = "RenderQueueUrl"
OUTPUT_WORK_LOCATION: Final = "WorkLocation"
