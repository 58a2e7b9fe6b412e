"""State: the image bucket, the job table, the upload queue and its dead-letter queue."""

from __future__ import annotations

import jsii
from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces.aws_s3 import IBucketRef
from constructs import Construct

from cutouts import constants as c
from cutouts.submit_budget import VISIBILITY_PER_TIMEOUT
from infra.config import StackConfig

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(name: str) -> dynamodb.Attribute:
    """A key attribute typed as TABLE_SCHEMA declares it, so the two cannot disagree."""
    types = {d["AttributeName"]: d["AttributeType"] for d in c.TABLE_SCHEMA["AttributeDefinitions"]}
    return dynamodb.Attribute(name=name, type=_ATTRIBUTE_TYPES[types[name]])


class Storage(Construct):
    """Bucket (new or existing), job table, queue + DLQ, and the S3 -> SQS notification."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, submit_timeout: Duration) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.bucket_is_new = config.bucket_name is None
        self.bucket: s3.IBucket = (
            s3.Bucket.from_bucket_name(self, "Bucket", config.bucket_name)
            if config.bucket_name
            else self._new_bucket(config, removal)
        )
        self.table = self._table(config, removal)
        self.dead_letter_queue, self.queue = self._queues(config, submit_timeout)

        # Only the input prefix notifies: outputs and failure reports never re-trigger the
        # pipeline. For an existing bucket CDK's notifications custom resource runs with
        # Managed=false: it reads the bucket's current configuration and adds/removes only
        # the notifications it owns, leaving the owner's other notifications in place.
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            AccountScopedQueueDestination(self.queue),
            s3.NotificationKeyFilter(prefix=config.input_prefix),
        )

    def _new_bucket(self, config: StackConfig, removal: RemovalPolicy) -> s3.Bucket:
        destroy = removal == RemovalPolicy.DESTROY
        access_logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(90))],
            removal_policy=removal,
            auto_delete_objects=destroy,
        )
        Validations.of(access_logs).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the server access log bucket of the image bucket; logging it into itself "
                "would log its own log deliveries without end.",
            )
        )
        bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # Versioned so a job is tied to the exact object version it presigned.
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="image-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
            removal_policy=removal,
            auto_delete_objects=destroy,
        )
        # A retained bucket keeps its policy (TLS only; for the log bucket also the log-delivery
        # grant): CDK gives a BucketPolicy DESTROY whatever the bucket's policy, so `cdk destroy`
        # of a retaining stage would leave the kept buckets open to plain HTTP, their logs stopped.
        for kept in (bucket, access_logs):
            if kept.policy is not None:
                kept.policy.apply_removal_policy(removal)
        return bucket

    def _table(self, config: StackConfig, removal: RemovalPolicy) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "JobTable",
            partition_key=_attribute(c.TABLE_PARTITION_KEY),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=c.TABLE_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=removal,
            deletion_protection=config.retain_data,
        )
        table.add_global_secondary_index(
            index_name=c.STATUS_INDEX_NAME,
            partition_key=_attribute(c.STATUS_INDEX_PARTITION_KEY),
            sort_key=_attribute(c.STATUS_INDEX_SORT_KEY),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        table.add_global_secondary_index(
            index_name=c.CONTENT_INDEX_NAME,
            partition_key=_attribute(c.CONTENT_INDEX_PARTITION_KEY),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        table.add_global_secondary_index(  # sparse: only jobs whose end's event is not sent yet
            index_name=c.EVENTS_INDEX_NAME,
            partition_key=_attribute(c.EVENTS_INDEX_PARTITION_KEY),
            sort_key=_attribute(c.STATUS_INDEX_SORT_KEY),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        return table

    def _queues(self, config: StackConfig, submit_timeout: Duration) -> tuple[sqs.Queue, sqs.Queue]:
        dlq = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        queue = sqs.Queue(
            self,
            "UploadQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # AWS guidance for Lambda event sources: six times the function timeout, so a
            # message is never visible again while an invocation may still be working on it.
            visibility_timeout=Duration.seconds(VISIBILITY_PER_TIMEOUT * submit_timeout.to_seconds()),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=config.max_receives),
        )
        Validations.of(dlq).acknowledge(
            Acknowledgment(
                id="Serverless-SQSRedrivePolicy",
                reason="This is the dead-letter queue itself; its messages are inspected (reconciler, "
                "operators) and redriven by hand, not passed on to a further queue.",
            )
        )
        return dlq, queue


@jsii.implements(s3.IBucketNotificationDestination)
class AccountScopedQueueDestination:
    """CDK's SqsDestination, with the bucket's account in the queue policy as well as its ARN.

    A bucket ARN carries no account id, so ``aws:SourceArn`` alone would also admit a bucket of
    that name in another account (after ours is deleted); AWS's own example pins both.
    """

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(self, scope: Construct, bucket: IBucketRef) -> s3.BucketNotificationDestinationConfig:
        self.queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowBucketNotifications",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                resources=[self.queue.queue_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": bucket.bucket_ref.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        return s3.BucketNotificationDestinationConfig(
            arn=self.queue.queue_arn,
            type=s3.BucketNotificationDestinationType.QUEUE,
            dependencies=[self.queue],
        )
