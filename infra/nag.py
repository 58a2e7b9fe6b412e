"""cdk-nag acknowledgments that span constructs; each names the rule, the resource and the reason.

Acknowledgments that belong to one construct live next to it (storage, secrets, api, functions).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

# The CDK-provided singleton that configures S3 notifications (a custom resource function).
BUCKET_NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def object_wildcard_finding(bucket: s3.IBucket, prefix: str) -> str:
    """The IAM5 finding id cdk-nag reports for `<bucket arn>/<prefix>*`."""
    cfn = bucket.node.default_child
    if isinstance(cfn, s3.CfnBucket):
        logical_id = Stack.of(bucket).resolve(Stack.of(bucket).get_logical_id(cfn))
        return f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]"
    return f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket.bucket_name}/{prefix}*]"


def acknowledge_prefix_wildcard(role: IConstruct, bucket: s3.IBucket, prefix: str) -> None:
    acknowledge(
        role,
        object_wildcard_finding(bucket, prefix),
        f"Object-level actions on the '{prefix}' prefix only: the object keys are the users' file names, "
        "unknown until upload. The prefix is the narrowest scope S3 allows.",
    )


def acknowledge_stack_level_constructs(stack: Stack) -> None:
    """Constructs that CDK itself adds to the stack (not ours to configure)."""
    handler = stack.node.try_find_child(BUCKET_NOTIFICATIONS_HANDLER_ID)
    if handler is not None:
        acknowledge(
            handler,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's own bucket-notifications custom resource function (runs only during deployment); its "
            "role and managed policy are fixed by aws-cdk-lib.",
        )


SERVERLESS_LAMBDA_DLQ_REASON = {
    "Submit": "Invoked synchronously by the SQS event source mapping; failed messages go to the upload "
    "queue's dead-letter queue (redrive policy), which a Lambda DLQ would not see.",
    "Webhook": "Invoked synchronously by API Gateway; the gateway retries a failed callback and the "
    "reconciler finishes jobs whose callback was lost. There is no async event to capture.",
    "SigningKeySeed": "Invoked by CloudFormation as a custom resource, which waits for its answer and fails "
    "the deployment (with the function's log named) if none comes; there is nothing to replay later.",
    "Render": "Invoked synchronously by the SQS event source mapping; failed requests go to the render "
    "queue's dead-letter queue (redrive policy, alarmed), which a Lambda DLQ would not see.",
    "Reconcile": "Scheduled tick with no payload: a failed run is simply repeated at the next tick, so a "
    "dead-letter copy of the tick would hold nothing to replay.",
}
