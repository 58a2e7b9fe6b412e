"""The Cutouts stack: S3 upload -> SQS -> submit -> gateway -> webhook / reconcile -> S3 cutout."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, Names, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cutouts import constants as c
from cutouts import settings_table as t
from cutouts.submit_budget import BATCH_SIZE, function_timeout_seconds
from infra import nag
from infra.api import CallbackApi
from infra.config import StackConfig
from infra.existing_bucket import check_existing_bucket, grant_bucket_key
from infra.functions import (
    MEMORY_MB,
    RECONCILE_TIMEOUT,
    WEBHOOK_TIMEOUT,
    CutoutsFunction,
    functions_code,
)
from infra.layers import dependency_layer, imaging_layer
from infra.observability import Observability
from infra.packaging import RUNTIME_PYTHON, find_python
from infra.profiles_config import PROFILES_PATH_IN_LAMBDA, load_profiles, profiles_layer
from infra.rendering import (
    RENDER_TIMEOUT,
    RenderQueues,
    connect_render_function,
    expire_normalised_copies,
    grant_rendering,
    render_memory_mb,
)
from infra.secrets import Secrets
from infra.signing_key import SigningKeySeed
from infra.storage import Storage

DEFAULT_CODE_DIR = Path(__file__).resolve().parent.parent / "functions"
# The submit function's SQS event source mapping (bench/scale.py models the deployed values).
SUBMIT_BATCH_SIZE = BATCH_SIZE  # submit_budget sizes batch and time-out so no batch can time out
SUBMIT_BATCHING_WINDOW_SECONDS = 1


class CutoutsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        code_dir: Path = DEFAULT_CODE_DIR,
        **kwargs: object,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Cutouts ({config.stage}): S3 uploads become transparent-background PNG cutouts",
            **kwargs,  # type: ignore[arg-type]
        )
        self.config = config
        check_existing_bucket(self, config)
        # Long enough for a whole batch of the slowest records (cutouts/submit_budget.py), so no batch times out.
        submit_timeout = Duration.seconds(function_timeout_seconds(config.http_timeout_seconds, config.max_image_bytes))
        storage = Storage(self, "Storage", config=config, submit_timeout=submit_timeout)
        secrets = Secrets(self, "Secrets", config=config)
        self.storage, self.secrets = storage, secrets

        code = functions_code(self, code_dir, find_python(RUNTIME_PYTHON))
        layer = dependency_layer(self)
        env_values = self._environment_values(config, storage, secrets)
        # Output profiles: validated at synth, read by the functions from a layer of their own.
        render_queues = RenderQueues(self, "Rendering", config=config)
        env_values |= {
            "profiles_path": PROFILES_PATH_IN_LAMBDA,
            "render_queue_url": render_queues.queue.queue_url,
            "render_dlq_url": render_queues.dead_letter_queue.queue_url,
            "queue_url": storage.queue.queue_url,
        }
        expire_normalised_copies(storage, config)

        def make(
            construct_id: str,
            handler: str,
            timeout: Duration,
            description: str,
            *,
            function: str,
            reserved_concurrency: int | None = None,
            memory_size: int = MEMORY_MB,
        ) -> CutoutsFunction:
            return CutoutsFunction(
                self,
                construct_id,
                config=config,
                code=code,
                layer=layer,
                handler=handler,
                timeout=timeout,
                description=description,
                environment=t.environment(env_values, function),
                reserved_concurrency=reserved_concurrency,
                memory_size=memory_size,
            )

        webhook = make(
            "Webhook",
            c.WEBHOOK_HANDLER,
            WEBHOOK_TIMEOUT,
            "Cutouts: verifies gateway callbacks, stores cutouts",
            function=t.WEBHOOK,
            # Reserved: a flood on the public callback API can neither starve the webhook nor use up
            # the account's concurrency; the API's burst equals it (infra/config.py).
            reserved_concurrency=config.webhook_reserved_concurrency,
        )
        api = CallbackApi(self, "CallbackApi", config=config, webhook=webhook.function)
        env_values["callback_base_url"] = api.url
        submit = make(
            "Submit",
            c.SUBMIT_HANDLER,
            submit_timeout,
            "Cutouts: submits uploaded images to the gateway",
            function=t.SUBMIT,
        )
        reconcile = make(
            "Reconcile",
            c.RECONCILE_HANDLER,
            RECONCILE_TIMEOUT,
            "Cutouts: polls, resubmits or fails jobs whose callback never came",
            function=t.RECONCILE,
        )
        render = make(
            "Render",
            c.RENDER_HANDLER,
            RENDER_TIMEOUT,
            "Cutouts: renders each job's outputs from its master; prepares uploads (Pillow)",
            function=t.RENDER,
            memory_size=render_memory_mb(config.max_image_pixels),
        )
        render.function.add_layers(imaging_layer(self))
        profiles = profiles_layer(self, load_profiles(config))
        for fn in (submit, webhook, reconcile, render):
            fn.function.add_layers(profiles)
        self.submit, self.webhook, self.reconcile, self.api = submit, webhook, reconcile, api
        self.render, self.render_queues = render, render_queues

        mapping = event_sources.SqsEventSource(
            storage.queue,
            batch_size=SUBMIT_BATCH_SIZE,
            max_batching_window=Duration.seconds(SUBMIT_BATCHING_WINDOW_SECONDS),
            report_batch_item_failures=True,
            max_concurrency=config.max_concurrency,
        )
        submit.function.add_event_source(mapping)
        nag.acknowledge(
            submit.function.node.find_child(f"SqsEventSource:{Names.node_unique_id(storage.queue.node)}"),
            "Serverless-LambdaEventSourceMappingDestination",
            "SQS event source mappings support no on-failure destination; the upload queue's redrive policy "
            "sends repeatedly failing messages to the dead-letter queue, which is alarmed.",
        )
        rule = events.Rule(
            self,
            "ReconcileSchedule",
            description="Cutouts: run the reconciler",
            schedule=events.Schedule.rate(Duration.minutes(config.reconcile_every_minutes)),
            targets=[targets.LambdaFunction(reconcile.function, retry_attempts=0)],
        )
        nag.acknowledge(
            rule,
            "Serverless-EventBusDLQ",
            "The target is a payload-free schedule tick; a lost tick is replaced by the next one a few "
            "minutes later, so there is nothing worth keeping in a dead-letter queue.",
        )

        seed = SigningKeySeed(self, "SigningKeySeed", config=config, code=code, layer=layer, secret=secrets.signing_key)
        for fn in (submit, webhook, reconcile):
            fn.function.node.add_dependency(seed.resource)  # none runs before the key has a value

        self._grant(config, storage, secrets, submit, webhook, reconcile)
        grant_bucket_key(config, (submit, webhook, reconcile, render))
        grant_rendering(
            config, storage, render_queues, submit=submit, webhook=webhook, reconcile=reconcile, render=render
        )
        # The render function ends jobs too (an upload already cut out completes there): it announces them.
        render.allow(
            "PutCompletionEvents",
            ["events:PutEvents"],
            [self.format_arn(service="events", resource="event-bus", resource_name=c.EVENT_BUS_NAME)],
            {"StringEquals": {"events:source": c.EVENT_SOURCE}},
        )
        observability = Observability(
            self,
            "Observability",
            config=config,
            queue=storage.queue,
            dead_letter_queue=storage.dead_letter_queue,
            functions={
                "Submit": submit.function,
                "Webhook": webhook.function,
                "Reconcile": reconcile.function,
                "Render": render.function,
            },
            api=api.api,
        )
        connect_render_function(render, render_queues, observability.topic)
        CfnOutput(self, c.OUTPUT_RENDER_QUEUE_URL, value=render_queues.queue.queue_url, description="Render queue")
        CfnOutput(
            self, c.OUTPUT_RENDER_FUNCTION_NAME, value=render.function.function_name, description="Render function"
        )
        CfnOutput(
            self,
            c.OUTPUT_WORK_LOCATION,
            value=f"s3://{storage.bucket.bucket_name}/{config.work_prefix}",
            description="Masters (kept results) and normalised inputs",
        )
        nag.acknowledge_stack_level_constructs(self)
        self._outputs(config, storage, secrets, api, observability, submit, webhook, reconcile)

    # ------------------------------------------------------------------ environment

    @staticmethod
    def _environment_values(config: StackConfig, storage: Storage, secrets: Secrets) -> dict[str, object]:
        """The functions' settings: the deployer's, plus the resources' names (the callback URL follows).

        Each function gets the variables its table entries name (cutouts/settings_table.py).
        Secrets appear only as ARNs/names, never as values.
        """
        return {
            **config.values(),
            "table_name": storage.table.table_name,
            "gateway_key_secret": secrets.gateway_key_reference,
            "signing_secret": secrets.signing_key.secret_arn,
            "dlq_url": storage.dead_letter_queue.queue_url,
        }

    # ------------------------------------------------------------------ permissions

    @staticmethod
    def _grant(
        config: StackConfig,
        storage: Storage,
        secrets: Secrets,
        submit: CutoutsFunction,
        webhook: CutoutsFunction,
        reconcile: CutoutsFunction,
    ) -> None:
        """Exactly what each function does; tests/infra pins these statements."""
        bucket = storage.bucket

        def objects(prefix: str) -> list[str]:
            return [bucket.arn_for_objects(f"{prefix}*")]

        table = storage.table.table_arn
        # Completion events (job_events): every function may end a job, so each announces ends on
        # the account's default bus, and only as the source "cutouts".
        default_bus = Stack.of(bucket).format_arn(
            service="events", resource="event-bus", resource_name=c.EVENT_BUS_NAME
        )
        for fn in (submit, webhook, reconcile):
            fn.allow(
                "PutCompletionEvents",
                ["events:PutEvents"],
                [default_bus],
                {"StringEquals": {"events:source": c.EVENT_SOURCE}},
            )
        secret_arns = [secrets.gateway_key_policy_arn, secrets.signing_key.secret_arn]

        # Every function may finish a job, so each writes cutouts the same way: read a twin's cutout
        # (or the key's own, to name an earlier upload in a report), write or copy one, and delete
        # one it wrote if its job lost the final write.
        cutout_actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]

        # submit: read the upload, copy an existing cutout for identical content, report failures.
        submit.allow("ReadUploads", ["s3:GetObject", "s3:GetObjectVersion"], objects(config.input_prefix))
        submit.allow("WriteCutouts", cutout_actions, objects(config.output_prefix))
        submit.allow("WriteFailureReports", ["s3:PutObject", "s3:DeleteObject"], objects(config.failure_prefix))
        submit.allow(
            "JobTable",
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
            [table, f"{table}/index/{c.CONTENT_INDEX_NAME}"],
        )
        submit.allow("ReadSecrets", ["secretsmanager:GetSecretValue"], secret_arns)
        # Honour Retry-After by extending a message's visibility (also granted by the event source).
        submit.allow("DelayRetries", ["sqs:ChangeMessageVisibility"], [storage.queue.queue_arn])

        # webhook: store the cutout (and hand it on to jobs waiting for the same bytes), write or
        # clear the failure report, bind an adopted request to its job, finish the job.
        webhook.allow("WriteCutouts", cutout_actions, objects(config.output_prefix))
        webhook.allow("WriteFailureReports", ["s3:PutObject", "s3:DeleteObject"], objects(config.failure_prefix))
        webhook.allow(
            "JobTable",
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
            [table, f"{table}/index/{c.CONTENT_INDEX_NAME}"],
        )
        webhook.allow("ReadSecrets", ["secretsmanager:GetSecretValue"], secret_arns)

        # reconcile: presign the upload again for a resubmission, finish jobs like the webhook.
        reconcile.allow("ReadUploads", ["s3:GetObject", "s3:GetObjectVersion"], objects(config.input_prefix))
        reconcile.allow("WriteCutouts", cutout_actions, objects(config.output_prefix))
        reconcile.allow("WriteFailureReports", ["s3:PutObject", "s3:DeleteObject"], objects(config.failure_prefix))
        reconcile.allow(
            "JobTable",
            ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:Query"],
            [
                table,
                f"{table}/index/{c.STATUS_INDEX_NAME}",
                f"{table}/index/{c.CONTENT_INDEX_NAME}",
                f"{table}/index/{c.EVENTS_INDEX_NAME}",  # ends whose event is still to send
            ],
        )
        reconcile.allow("ReadSecrets", ["secretsmanager:GetSecretValue"], secret_arns)
        # Without s3:ListBucket S3 answers a GET or HEAD of a missing key with 403 AccessDenied, not
        # 404, and a deleted source (source-deleted) or a vanished cutout looks like a permission
        # error. Each function that reads keys which may be gone may list only under the prefixes
        # it reads: submit reads sources and HEADs a twin's cutout (de-duplication); reconcile
        # presigns sources again for a resubmission (the gateway's fetch is signed by its role).
        for fn, read_prefixes in (
            (submit, (config.input_prefix, config.output_prefix)),
            (webhook, (config.output_prefix,)),
            (reconcile, (config.input_prefix, config.output_prefix)),
        ):
            fn.allow(
                "SeeMissingKeys",
                ["s3:ListBucket"],
                [bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in read_prefixes]}},
            )
        for fn, prefixes in (
            (submit, (config.input_prefix, config.output_prefix, config.failure_prefix)),
            (webhook, (config.output_prefix, config.failure_prefix)),
            (reconcile, (config.input_prefix, config.output_prefix, config.failure_prefix)),
        ):
            for prefix in prefixes:
                nag.acknowledge_prefix_wildcard(fn.role, bucket, prefix)
        # A job stranded in RETRY without its queue message gets the upload's notification again.
        reconcile.allow("RequeueStrandedUploads", ["sqs:SendMessage"], [storage.queue.queue_arn])
        reconcile.allow(
            "InspectDeadLetters",
            ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:DeleteMessage"],
            [storage.dead_letter_queue.queue_arn],
        )

    # ------------------------------------------------------------------ outputs

    def _outputs(
        self,
        config: StackConfig,
        storage: Storage,
        secrets: Secrets,
        api: CallbackApi,
        observability: Observability,
        submit: CutoutsFunction,
        webhook: CutoutsFunction,
        reconcile: CutoutsFunction,
    ) -> None:
        name = storage.bucket.bucket_name
        gateway_key_arn = (
            secrets.gateway_key.secret_arn
            if isinstance(secrets.gateway_key, secretsmanager.Secret)
            else secrets.gateway_key.secret_name
        )
        outputs = {
            c.OUTPUT_BUCKET_NAME: (name, "The image bucket"),
            c.OUTPUT_INPUT_LOCATION: (f"s3://{name}/{config.input_prefix}", "Upload images here"),
            c.OUTPUT_OUTPUT_LOCATION: (f"s3://{name}/{config.output_prefix}", "Cutouts (PNG) appear here"),
            c.OUTPUT_FAILURE_LOCATION: (
                f"s3://{name}/{config.failure_prefix}",
                "Failure reports (JSON) appear here",
            ),
            c.OUTPUT_CALLBACK_BASE_URL: (api.url, "Base URL of the gateway callback API"),
            c.OUTPUT_GATEWAY_KEY_SECRET_ARN: (
                gateway_key_arn,
                "Put your gateway API key here (Secrets Manager)",
            ),
            c.OUTPUT_SIGNING_SECRET_ARN: (secrets.signing_key.secret_arn, "Callback signing key (generated)"),
            c.OUTPUT_TABLE_NAME: (storage.table.table_name, "Job table"),
            c.OUTPUT_QUEUE_URL: (storage.queue.queue_url, "Upload event queue"),
            c.OUTPUT_DLQ_URL: (storage.dead_letter_queue.queue_url, "Dead-letter queue of the upload queue"),
            c.OUTPUT_ALARM_TOPIC_ARN: (observability.topic.topic_arn, "SNS topic the alarms notify"),
            c.OUTPUT_DASHBOARD_NAME: (observability.dashboard_name, "CloudWatch dashboard"),
            c.OUTPUT_SUBMIT_FUNCTION_NAME: (submit.function.function_name, "Submit function"),
            c.OUTPUT_WEBHOOK_FUNCTION_NAME: (webhook.function.function_name, "Webhook function"),
            c.OUTPUT_RECONCILE_FUNCTION_NAME: (reconcile.function.function_name, "Reconcile function"),
        }
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=description)
