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

# HTTP API callback route: POST /callback/{job_id}?attempt=N&token=T
CALLBACK_PATH: Final = "/callback"
CALLBACK_ROUTE: Final = "POST /callback/{job_id}"

GATEWAY_STATUS_PATH: Final = "/v2/requests/status/"

# Metrics namespace and names.
METRICS_NAMESPACE: Final = "Cutouts"
SERVICE_NAME: Final = "cutouts"
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

# Content de-duplication index: jobs with the same source bytes share one gateway call.
CONTENT_INDEX_NAME: Final = "by_content"
CONTENT_INDEX_PARTITION_KEY: Final = "content_hash"

# The job table's key schema, as boto3 `create_table` keyword arguments (add TableName).
# The stack builds its table from these names and an infra test asserts the synthesized
# table matches this dict exactly, so the local stack, the tests and the cloud agree.
TABLE_SCHEMA: Final[dict[str, Any]] = {
    "AttributeDefinitions": [
        {"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"},
        {"AttributeName": STATUS_INDEX_PARTITION_KEY, "AttributeType": "S"},
        {"AttributeName": STATUS_INDEX_SORT_KEY, "AttributeType": "N"},
        {"AttributeName": CONTENT_INDEX_PARTITION_KEY, "AttributeType": "S"},
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
