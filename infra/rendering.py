"""Rendering: the render queue and its dead-letter queue, the render function, its grants and alarm.

The webhook keeps the gateway's result as the key's master (``<work>masters/``) and puts a render
request on the render queue; the render function (Pillow, in the imaging layer, with the memory
to decode a master) writes every output of the job's profile. It also prepares uploads the
gateway cannot take as they are (``<work>normalised/``, expired by a lifecycle rule) and uploads
that are already cut out. A failed render goes back to the queue and, after ``maxReceives``
deliveries, to the render dead-letter queue, which is alarmed and which the reconciler sweeps into
failure reports (cutouts.render_dead_letters): a retry never calls the gateway.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cutouts.constants import RENDER_BATCH_SIZE
from cutouts.masters import MASTERS, NORMALISED
from infra import nag
from infra.config import StackConfig
from infra.functions import CutoutsFunction
from infra.storage import Storage

# Memory follows the pixel cap (a master or an upload is at most maxImagePixels) and the figures
# measured in docs/profiles.md: rendering `shop` peaks at 1.83x one decoded RGBA frame
# (`python -m bench --only render`), preparing an upload (a turned 48 MP JPEG) at 2.25x
# (`python -m bench.prepare`), plus ~160 MB of runtime (an estimate). 64 MP: 768 MB; 48 MP: 576 MB.
# Lambda gives CPU in proportion to memory.
RENDER_PEAK_PER_RGBA_FRAME = 1.83
PREPARE_PEAK_PER_RGBA_FRAME = 2.25
RUNTIME_MB = 160
MIN_RENDER_MEMORY_MB, MAX_LAMBDA_MEMORY_MB = 512, 10_240


def render_memory_mb(max_pixels: int) -> int:
    """The render function's memory for masters and uploads of up to ``max_pixels`` (64 MB steps)."""
    mib = 1024 * 1024
    frame_mb = max_pixels * 4 / mib
    needed = frame_mb * max(RENDER_PEAK_PER_RGBA_FRAME, PREPARE_PEAK_PER_RGBA_FRAME) + RUNTIME_MB
    steps = -(-int(needed) // 64) * 64
    return max(MIN_RENDER_MEMORY_MB, min(MAX_LAMBDA_MEMORY_MB, steps))


RENDER_TIMEOUT = Duration.seconds(300)  # cutouts.derived_outputs.RENDER_LEASE_SECONDS is this plus room
NORMALISED_EXPIRY_DAYS = 2  # a normalised copy is needed only until the gateway has fetched it


class RenderQueues(Construct):
    """The render queue and its DLQ; made before the functions, whose environment names the queue."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "RenderDeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "RenderQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(6 * RENDER_TIMEOUT.to_seconds()),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=config.max_receives),
        )
        Validations.of(self.dead_letter_queue).acknowledge(
            Acknowledgment(
                id="Serverless-SQSRedrivePolicy",
                reason="This is the render dead-letter queue itself; it is alarmed, and the reconciler turns "
                "each message into failure reports (rerender re-derives every output from the kept masters).",
            )
        )


def expire_normalised_copies(storage: Storage, config: StackConfig) -> None:
    """Normalised copies are scratch: S3 deletes them after NORMALISED_EXPIRY_DAYS (masters are kept)."""
    bucket = storage.bucket
    if isinstance(bucket, s3.Bucket):
        bucket.add_lifecycle_rule(
            id="expire-normalised-inputs",
            prefix=f"{config.work_prefix}{NORMALISED}",
            expiration=Duration.days(NORMALISED_EXPIRY_DAYS),
        )


def connect_render_function(
    render: CutoutsFunction,
    queues: RenderQueues,
    topic: sns.ITopic,
) -> cw.Alarm:
    """The render queue drives the render function; its dead letters raise an alarm."""
    mapping = event_sources.SqsEventSource(
        queues.queue,
        batch_size=RENDER_BATCH_SIZE,
        report_batch_item_failures=True,
    )
    render.function.add_event_source(mapping)
    nag.acknowledge(
        render.function,
        "Serverless-LambdaEventSourceMappingDestination",
        "SQS event source mappings support no on-failure destination; the render queue's redrive policy "
        "sends repeatedly failing requests to the render dead-letter queue, which is alarmed.",
    )
    alarm = cw.Alarm(
        render,
        "RenderDeadLettersAlarm",
        metric=queues.dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(1), statistic="Maximum"
        ),
        threshold=0,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description="Render requests failed on every delivery (render dead-letter queue): outputs are "
        "missing for those keys, or uploads were never prepared. The reconciler reports each one (prepare-failed "
        "for the upload, render-dead-lettered per missing output) and deletes it. See the render function's "
        "logs, fix the cause, then `python -m cutouts_cli retry --reason prepare-failed` or `rerender` "
        "(no gateway call for a rerender).",
    )
    action = cw_actions.SnsAction(topic)
    alarm.add_alarm_action(action)
    alarm.add_ok_action(action)
    return alarm


def grant_rendering(
    config: StackConfig,
    storage: Storage,
    queues: RenderQueues,
    *,
    submit: CutoutsFunction,
    webhook: CutoutsFunction,
    reconcile: CutoutsFunction,
    render: CutoutsFunction,
) -> None:
    """Exactly what each function does with masters, normalised copies and render requests."""
    bucket = storage.bucket
    masters = bucket.arn_for_objects(f"{config.work_prefix}{MASTERS}*")
    normalised = bucket.arn_for_objects(f"{config.work_prefix}{NORMALISED}*")
    work = f"{config.work_prefix}"

    # submit: find a normalised copy (HEAD) and presign it; ask for preparation; de-duplication HEADs
    # and copies a twin's result, which for a key with a rendering profile is its master.
    submit.allow("ReadWork", ["s3:GetObject"], [normalised, masters])
    submit.allow("RequestRendering", ["sqs:SendMessage"], [queues.queue.queue_arn])
    # webhook and reconcile finish jobs: write the master (stream or copy), ask for rendering;
    # reconcile also presigns a normalised copy for a resubmission.
    for fn in (webhook, reconcile):
        fn.allow(
            "WriteMasters", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], [masters]
        )
        fn.allow("RequestRendering", ["sqs:SendMessage"], [queues.queue.queue_arn])
    reconcile.allow("ReadNormalisedInputs", ["s3:GetObject"], [normalised])
    # reconcile reports what dead-lettered on the render queue, then deletes it (cutouts.render_dead_letters).
    reconcile.allow(
        "InspectRenderDeadLetters",
        ["sqs:ReceiveMessage", "sqs:GetQueueAttributes", "sqs:DeleteMessage"],
        [queues.dead_letter_queue.queue_arn],
    )
    # A missing master or copy must answer 404, not 403 (s3_objects.head_or_none).
    for fn, read in (
        (submit, (NORMALISED, MASTERS)),
        (webhook, (MASTERS,)),
        (reconcile, (NORMALISED, MASTERS)),
    ):
        fn.allow(
            "SeeMissingWork",
            ["s3:ListBucket"],
            [bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{config.work_prefix}{part}*" for part in read]}},
        )
        for part in read:
            nag.acknowledge_prefix_wildcard(fn.role, bucket, f"{config.work_prefix}{part}")

    # render: read uploads and masters, write masters, normalised copies, outputs and reports;
    # complete a job from an upload that is already cut out (the job table, the key's lease);
    # hand a prepared upload back to submission through the upload queue.
    render.allow(
        "ReadUploads", ["s3:GetObject", "s3:GetObjectVersion"], [bucket.arn_for_objects(f"{config.input_prefix}*")]
    )
    render.allow(
        "WorkObjects", ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], [bucket.arn_for_objects(f"{work}*")]
    )
    render.allow(
        "WriteOutputs",
        ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
        [bucket.arn_for_objects(f"{config.output_prefix}*")],
    )
    render.allow(
        "WriteFailureReports",
        ["s3:PutObject", "s3:DeleteObject"],
        [bucket.arn_for_objects(f"{config.failure_prefix}*")],
    )
    render.allow(
        "SeeMissingKeys",
        ["s3:ListBucket"],
        [bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in (config.input_prefix, work, config.output_prefix)]}},
    )
    table = storage.table.table_arn
    render.allow("JobTable", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], [table])
    render.allow("ReturnPreparedUploads", ["sqs:SendMessage"], [storage.queue.queue_arn])
    for prefix in (config.input_prefix, work, config.output_prefix, config.failure_prefix):
        nag.acknowledge_prefix_wildcard(render.role, bucket, prefix)
