"""Names shared by the stack, the functions, the local stack and the tests.

One place, so a rename cannot drift between the template and the code that reads it.
"""

from typing import Any, Final

# Environment variables the functions read (values are set by the stack or the local stack).
ENV_TABLE_NAME: Final = "CUTOUTS_TABLE_NAME"
ENV_INPUT_PREFIX: Final = "CUTOUTS_INPUT_PREFIX"
ENV_OUTPUT_PREFIX: Final = "CUTOUTS_OUTPUT_PREFIX"
ENV_FAILURE_PREFIX: Final = "CUTOUTS_FAILURE_PREFIX"
ENV_GATEWAY_BASE_URL: Final = "CUTOUTS_GATEWAY_BASE_URL"
ENV_GATEWAY_MODEL_PATH: Final = "CUTOUTS_GATEWAY_MODEL_PATH"
ENV_GATEWAY_KEY_SECRET: Final = "CUTOUTS_GATEWAY_KEY_SECRET"
ENV_SIGNING_SECRET: Final = "CUTOUTS_SIGNING_SECRET"
ENV_CALLBACK_BASE_URL: Final = "CUTOUTS_CALLBACK_BASE_URL"
ENV_PRESIGN_EXPIRY_SECONDS: Final = "CUTOUTS_PRESIGN_EXPIRY_SECONDS"
ENV_MAX_IMAGE_BYTES: Final = "CUTOUTS_MAX_IMAGE_BYTES"
ENV_MAX_IMAGE_PIXELS: Final = "CUTOUTS_MAX_IMAGE_PIXELS"
ENV_MAX_MEDIA_BYTES: Final = "CUTOUTS_MAX_MEDIA_BYTES"
ENV_ALLOWED_MEDIA_HOSTS: Final = "CUTOUTS_ALLOWED_MEDIA_HOSTS"
ENV_ALLOW_HTTP_MEDIA: Final = "CUTOUTS_ALLOW_HTTP_MEDIA"  # local stack only; never set by the stack
ENV_HTTP_TIMEOUT_SECONDS: Final = "CUTOUTS_HTTP_TIMEOUT_SECONDS"
ENV_MAX_ATTEMPTS: Final = "CUTOUTS_MAX_ATTEMPTS"
ENV_MAX_RECEIVES: Final = "CUTOUTS_MAX_RECEIVES"
ENV_STALE_AFTER_SECONDS: Final = "CUTOUTS_STALE_AFTER_SECONDS"
ENV_MAX_AGE_SECONDS: Final = "CUTOUTS_MAX_AGE_SECONDS"
ENV_IN_DOUBT_GRACE_SECONDS: Final = "CUTOUTS_IN_DOUBT_GRACE_SECONDS"
ENV_DLQ_URL: Final = "CUTOUTS_DLQ_URL"
ENV_SECRET_MAX_AGE_SECONDS: Final = "CUTOUTS_SECRET_MAX_AGE_SECONDS"
ENV_JOB_TTL_DAYS: Final = "CUTOUTS_JOB_TTL_DAYS"
ENV_DEDUP_ENABLED: Final = "CUTOUTS_DEDUP_ENABLED"
ENV_RETRY_BASE_SECONDS: Final = "CUTOUTS_RETRY_BASE_SECONDS"

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

# HTTP API callback route: POST /callback/{job_id}?attempt=N&token=T
CALLBACK_PATH: Final = "/callback"
CALLBACK_ROUTE: Final = "POST /callback/{job_id}"

# Defaults (also the CDK context defaults).
DEFAULT_INPUT_PREFIX: Final = "uploads/"
DEFAULT_OUTPUT_PREFIX: Final = "cutouts/"
DEFAULT_FAILURE_PREFIX: Final = "failed/"
DEFAULT_GATEWAY_BASE_URL: Final = "https://gateway.pixazo.ai"
DEFAULT_GATEWAY_MODEL_PATH: Final = "/bria-rmbg-2-0-682/v1/bria-rmbg-2-0-request"
GATEWAY_STATUS_PATH: Final = "/v2/requests/status/"
DEFAULT_ALLOWED_MEDIA_HOSTS: Final = ("pub-582b7213209642b9b995c96c95a30381.r2.dev",)
DEFAULT_PRESIGN_EXPIRY_SECONDS: Final = 3600
DEFAULT_MAX_IMAGE_BYTES: Final = 25 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS: Final = 64_000_000
DEFAULT_MAX_MEDIA_BYTES: Final = 200 * 1024 * 1024
DEFAULT_HTTP_TIMEOUT_SECONDS: Final = 10.0
DEFAULT_MAX_ATTEMPTS: Final = 3
DEFAULT_MAX_RECEIVES: Final = 6
DEFAULT_STALE_AFTER_SECONDS: Final = 300
DEFAULT_MAX_AGE_SECONDS: Final = 3600
DEFAULT_IN_DOUBT_GRACE_SECONDS: Final = 900
DEFAULT_SECRET_MAX_AGE_SECONDS: Final = 300
DEFAULT_JOB_TTL_DAYS: Final = 30
DEFAULT_RETRY_BASE_SECONDS: Final = 15

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

# More defaults for CDK context keys (infra/config.py; README context table).
DEFAULT_STAGE: Final = "dev"
DEFAULT_MAX_CONCURRENCY: Final = 5
DEFAULT_RECONCILE_EVERY_MINUTES: Final = 1
DEFAULT_LOG_RETENTION_DAYS: Final = 30
DEFAULT_DEDUP_ENABLED: Final = True
DEFAULT_WEBHOOK_RESERVED_CONCURRENCY: Final = 20  # also the callback API's burst (infra/config.py)
# Published Powertools layer (account 017000801446), AWSLambdaPowertoolsPythonV3-python313-arm64:N.
# Version 27 is the newest number found in the Powertools docs history offline; check
# `aws lambda list-layer-versions --layer-name arn:aws:lambda:<region>:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64`
# and set -c powertoolsLayerVersion=N to the one matching requirements.txt.
DEFAULT_POWERTOOLS_LAYER_VERSION: Final = 27
POWERTOOLS_LAYER_ACCOUNT: Final = "017000801446"
POWERTOOLS_LAYER_NAME: Final = "AWSLambdaPowertoolsPythonV3-python313-arm64"

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
