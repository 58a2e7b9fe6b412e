"""Every setting once: context key, environment variable, kind, default, bounds, readers, help.

Derived from this table: the CDK context parsing (infra/config.py), each function's environment
(infra/stack.py), the functions' Settings (cutouts/settings.py), the local stack's environment
(local/pipeline.py) and the configuration table in docs/configuration.md (`python -m cutouts.settings_table`).
Adding a setting is one entry here plus its use (and its typed field on `Settings` or
`StackConfig`, which a test holds to this table).

Pure data and two small helpers: every cold start imports it, so NamedTuple and tuples only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

# Kinds: how a value is read from CDK context (infra/config.py) and from the environment
# (cutouts/settings.py). Both sides accept every kind a setting of theirs uses.
INT: Final = "int"
FLOAT: Final = "float"  # positive at run time
BOOL: Final = "bool"
STR: Final = "str"
PREFIX: Final = "prefix"  # an S3 key prefix ending in '/'
URL: Final = "url"  # https scheme and host (context); trailing '/' dropped (environment)
PATH: Final = "path"  # a URL path starting with '/'
HOSTS: Final = "hosts"  # comma-separated host names (environment), a list or a string (context)
# Context only: each has its own validator in infra/config.py.
STAGE: Final = "stage"
BUCKET: Final = "bucket"
SECRET_NAME: Final = "secret-name"
EMAIL: Final = "email"
LOG_RETENTION: Final = "log-retention"
RESERVED_CONCURRENCY: Final = "reserved-concurrency"
PROFILES_FILE: Final = "profiles-file"  # a profiles JSON file, validated at synth (cutouts/profiles.py)
OVERSIZE: Final = "oversize"  # "downscale" | "fail" (context and environment)
OVERSIZE_CHOICES: Final = ("downscale", "fail")

# The deployed functions whose environment holds a setting.
SUBMIT: Final = "submit"
WEBHOOK: Final = "webhook"
RECONCILE: Final = "reconcile"
RENDER: Final = "render"  # renders a job's outputs from its master, normalises inputs (Pillow)
ALL: Final = (SUBMIT, WEBHOOK, RECONCILE, RENDER)


class Setting(NamedTuple):
    """One setting. `key` None: the stack supplies the value (a resource); `env` None: only the stack reads it."""

    attr: str  # attribute on Settings (functions) and StackConfig (stack)
    key: str | None  # CDK context key
    env: str | None  # environment variable the functions read
    kind: str
    default: Any  # None with an env var and no key: required at cold start
    lo: float | None = None  # bounds checked at synth
    hi: float | None = None
    floor: float | None = None  # least value the functions accept (the local stack runs below `lo`); default lo
    functions: tuple[str, ...] = ALL  # deployed functions whose environment holds `env`; () for none
    help: str = ""  # the documented "rule and meaning"
    shown: str = ""  # the documented default column, when the default alone says too little


# Order: the functions' environment follows it (so the synthesized template does too).
# One line a setting, long on purpose: the formatter leaves the table alone.
# fmt: off
SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("stage", "stage", None, STAGE, "dev", help="lower-case, 1–20 chars; stack `Cutouts-<stage>`; `dev`/`test` are destroyable, other stages retain data"),
    Setting("bucket_name", "bucketName", None, BUCKET, None, shown="(new bucket)", help="use this existing bucket in the stack's region"),
    Setting("bucket_region", "bucketRegion", None, STR, None, shown="(not checked)", help="with `bucketName`: the existing bucket's region; synthesis (and so `cdk deploy`) stops if the stack's region differs"),
    Setting("bucket_kms_key_arn", "bucketKmsKeyArn", None, STR, None, shown="(none)", help="with `bucketName`: the KMS key of the bucket's SSE-KMS default encryption; the functions get `kms:Decrypt`/`kms:GenerateDataKey` on it through S3"),
    Setting("table_name", None, "CUTOUTS_TABLE_NAME", STR, None, help="the job table"),
    Setting("input_prefix", "inputPrefix", "CUTOUTS_INPUT_PREFIX", PREFIX, "uploads/", help="end with `/`; uploads here are cut out; the output and failure prefixes must not be inside it (or contain it)"),
    Setting("output_prefix", "outputPrefix", "CUTOUTS_OUTPUT_PREFIX", PREFIX, "cutouts/", help="end with `/`; cutouts (PNG) are written here"),
    Setting("failure_prefix", "failurePrefix", "CUTOUTS_FAILURE_PREFIX", PREFIX, "failed/", help="end with `/`; failure reports (JSON) are written here; must differ from the output prefix"),
    Setting("gateway_base_url", "gatewayBaseUrl", "CUTOUTS_GATEWAY_BASE_URL", URL, "https://gateway.pixazo.ai", help="https, host only"),
    Setting("gateway_model_path", "gatewayModelPath", "CUTOUTS_GATEWAY_MODEL_PATH", PATH, "/bria-rmbg-2-0-682/v1/bria-rmbg-2-0-request", help="path starting with `/`"),
    Setting("gateway_key_secret_name", "gatewayKeySecretName", None, SECRET_NAME, None, shown="(new empty secret)", help="an existing secret holding the key"),
    Setting("gateway_key_secret", None, "CUTOUTS_GATEWAY_KEY_SECRET", STR, None, help="the gateway key secret's ARN or name"),
    Setting("signing_secret", None, "CUTOUTS_SIGNING_SECRET", STR, None, help="the callback signing secret's ARN"),
    Setting("presign_expiry_seconds", "presignExpirySeconds", "CUTOUTS_PRESIGN_EXPIRY_SECONDS", INT, 3600, 60, 604_800, help="a presigned URL also dies with the role session that signed it"),
    Setting("max_concurrency", "maxConcurrency", None, INT, 5, 2, 1000, help="at most `webhookReservedConcurrency` / 4: the submit function's SQS maximum concurrency (the gateway answers 429 beyond its limit)"),
    Setting("alarm_email", "alarmEmail", None, EMAIL, None, shown="(none)", help="e-mail subscribed to the alarm topic"),
    Setting("max_image_bytes", "maxImageBytes", "CUTOUTS_MAX_IMAGE_BYTES", INT, 25 * 1024 * 1024, 1024, 512 * 1024 * 1024, 1, help="larger inputs are reported as `too-large`"),
    Setting("max_image_pixels", "maxImagePixels", "CUTOUTS_MAX_IMAGE_PIXELS", INT, 64_000_000, 1, 1_000_000_000, help="larger inputs are reported as `too-large`"),
    Setting("max_media_bytes", "maxMediaBytes", "CUTOUTS_MAX_MEDIA_BYTES", INT, 200 * 1024 * 1024, 1024, 5 * 1024**3, 1, help="cap on a downloaded result"),
    Setting("allowed_media_hosts", "allowedMediaHosts", "CUTOUTS_ALLOWED_MEDIA_HOSTS", HOSTS, ("pub-582b7213209642b9b995c96c95a30381.r2.dev",), help="host names results may be downloaded from (the gateway's R2 CDN in the reference)"),
    Setting("allow_http_media", None, "CUTOUTS_ALLOW_HTTP_MEDIA", BOOL, False, functions=(), help="local stack only: media over plain http"),
    Setting("http_timeout_seconds", "httpTimeoutSeconds", "CUTOUTS_HTTP_TIMEOUT_SECONDS", FLOAT, 10.0, 1.0, 20.0, help="every gateway and media call"),
    Setting("max_attempts", "maxAttempts", "CUTOUTS_MAX_ATTEMPTS", INT, 3, 1, 10, help="accepted submissions per job (resubmissions after `ERROR`)"),
    Setting("max_receives", "maxReceives", "CUTOUTS_MAX_RECEIVES", INT, 6, 1, 1000, help="SQS deliveries before the dead-letter queue (transient 429/5xx retries, with backoff)"),
    Setting("stale_after_seconds", "staleAfterSeconds", "CUTOUTS_STALE_AFTER_SECONDS", INT, 300, 30, 86_400, 0, help="a job with no callback this long is checked by the reconciler"),
    Setting("max_age_seconds", "maxAgeSeconds", "CUTOUTS_MAX_AGE_SECONDS", INT, 3600, 60, 14 * 86_400, 1, help="greater than `staleAfterSeconds`; an open job older than this fails as `timed-out`"),
    Setting("in_doubt_grace_seconds", "inDoubtGraceSeconds", "CUTOUTS_IN_DOUBT_GRACE_SECONDS", INT, 900, 0, 86_400, help="how long a submission with no answer waits for a callback before it is resubmitted"),
    Setting("secret_max_age_seconds", "secretMaxAgeSeconds", "CUTOUTS_SECRET_MAX_AGE_SECONDS", INT, 300, 0, 3600, help="secret cache lifetime (key rotation delay)"),
    Setting("reconcile_every_minutes", "reconcileEveryMinutes", None, INT, 1, 1, 1440, help="reconciler schedule"),
    Setting("log_retention_days", "logRetentionDays", None, LOG_RETENTION, 30, help="CloudWatch Logs retention: one of the periods CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... days)"),
    Setting("job_ttl_days", "jobTtlDays", "CUTOUTS_JOB_TTL_DAYS", INT, 30, 1, 3650, help="finished job records expire after this"),
    Setting("dedup_enabled", "dedup", "CUTOUTS_DEDUP_ENABLED", BOOL, True, help="reuse the cutout of identical bytes instead of paying again"),
    Setting("retry_base_seconds", "retryBaseSeconds", "CUTOUTS_RETRY_BASE_SECONDS", INT, 15, 0, 3600, help="first backoff step for 429/5xx (doubles per delivery, at least `Retry-After`)"),
    Setting("callback_base_url", None, "CUTOUTS_CALLBACK_BASE_URL", URL, "", functions=(SUBMIT, RECONCILE), help="the callback API's URL"),
    Setting("dlq_url", None, "CUTOUTS_DLQ_URL", STR, "", functions=(RECONCILE,), help="the upload queue's dead-letter queue"),
    Setting("daily_budget_usd", "dailyBudgetUsd", "CUTOUTS_DAILY_BUDGET_USD", FLOAT, 50.0, 0, 1_000_000, 0, functions=(SUBMIT, RECONCILE), help="US dollars the gateway may be paid per UTC day, reserved before every POST; at the budget new jobs are parked (0 parks everything)"),
    Setting("monthly_budget_usd", "monthlyBudgetUsd", "CUTOUTS_MONTHLY_BUDGET_USD", FLOAT, 0.0, 0, 100_000_000, 0, functions=(SUBMIT, RECONCILE), shown="(none)", help="US dollars per UTC calendar month, on top of the daily budget; 0 or unset: no monthly budget"),
    Setting("price_per_image_usd", "pricePerImageUsd", "CUTOUTS_PRICE_PER_IMAGE_USD", FLOAT, 0.018, 0.0001, 100, functions=(SUBMIT, RECONCILE), help="what one accepted POST costs at the gateway; reserved against the budgets"),
    Setting("max_versions_per_key_per_day", "maxVersionsPerKeyPerDay", "CUTOUTS_MAX_VERSIONS_PER_KEY_PER_DAY", INT, 20, 1, 1000, functions=(SUBMIT,), help="more uploads of one key in a UTC day are a loop: not submitted that day, reported as `upload-loop`"),
    Setting("webhook_reserved_concurrency", "webhookReservedConcurrency", None, RESERVED_CONCURRENCY, 20, help="1–900 (AWS keeps 100 of the account's concurrency unreserved; default account limit 1000), and at least 4 × `maxConcurrency`: the webhook's reserved concurrency, also the callback route's burst; the route's rate is 4 × `maxConcurrency` a second (2 submissions a second per submit slot, each called back at most twice)"),
    Setting("profiles_file", "profilesFile", None, PROFILES_FILE, "profiles.json", help="output profiles (JSON, see docs/profiles.md), relative to the repository root; validated at synth; no file at the default path means one `default` profile writing today's PNG cutout"),
    Setting("profiles_path", None, "CUTOUTS_PROFILES_PATH", STR, "", help="the validated profiles file inside the functions' profiles layer; empty: the default profile"),
    Setting("work_prefix", "workPrefix", "CUTOUTS_WORK_PREFIX", PREFIX, "work/", help="end with `/`; masters (the gateway's result, kept for `rerender`) under `masters/`, normalised inputs under `normalised/` (expire after 2 days); outside the input prefix"),
    Setting("oversize", "oversize", "CUTOUTS_OVERSIZE", OVERSIZE, "downscale", help="`downscale` (an input over `maxImagePixels` is downscaled to fit before submission) or `fail` (it is reported as `too-many-pixels`)"),
    Setting("skip_cut_out", "skipCutOut", "CUTOUTS_SKIP_CUT_OUT", BOOL, True, help="an input whose alpha already makes its border transparent is not sent to the gateway: its own alpha is the master (metric `GatewayCallsSaved`)"),
    Setting("render_queue_url", None, "CUTOUTS_RENDER_QUEUE_URL", STR, "", functions=(SUBMIT, WEBHOOK, RECONCILE), help="the render queue (outputs and input preparation)"),
    Setting("render_dlq_url", None, "CUTOUTS_RENDER_DLQ_URL", STR, "", functions=(RECONCILE,), help="the render queue's dead-letter queue: the reconciler reports what ended there"),
    Setting("queue_url", None, "CUTOUTS_QUEUE_URL", STR, "", functions=(RENDER, RECONCILE), help="the upload queue: a prepared (normalised) input goes back to submission through it, and so does a job stranded in RETRY without its message"),
)
# fmt: on

BY_ATTR: Final[dict[str, Setting]] = {s.attr: s for s in SETTINGS}
DEFAULTS: Final[dict[str, Any]] = {s.attr: s.default for s in SETTINGS}
ENV_NAMES: Final[dict[str, str]] = {s.attr: s.env for s in SETTINGS if s.env}
CONTEXT_SETTINGS: Final[tuple[Setting, ...]] = tuple(s for s in SETTINGS if s.key)
ENV_SETTINGS: Final[tuple[Setting, ...]] = tuple(s for s in SETTINGS if s.env)


def env_value(value: Any) -> str:
    """A setting's value as its environment variable holds it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list | frozenset | set):
        return ",".join(value)
    return str(value)


def environment(values: Mapping[str, Any], function: str | None = None) -> dict[str, str]:
    """Environment variables from ``values`` (attribute -> value), in table order.

    With ``function``: exactly the variables that deployed function is given, each of which must
    have a value (a KeyError names a missing one). Without: those of ``values`` (the local stack).
    """
    if function is None:
        return {s.env: env_value(values[s.attr]) for s in ENV_SETTINGS if s.env and s.attr in values}
    return {s.env: env_value(values[s.attr]) for s in ENV_SETTINGS if s.env and function in s.functions}


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value}"


def configuration_table() -> str:
    """The configuration table of docs/configuration.md (a test compares them)."""
    rows = ["| key | default | rule and meaning |", "|---|---|---|"]
    for s in CONTEXT_SETTINGS:
        if s.shown:
            default = s.shown
        elif isinstance(s.default, bool):
            default = "true" if s.default else "false"
        elif isinstance(s.default, int | float):
            default = _number(s.default)
        else:
            default = f"`{env_value(s.default)}`"
        rule = f"{_number(s.lo)}–{_number(s.hi)}; {s.help}" if s.lo is not None and s.hi is not None else s.help
        rows.append(f"| `{s.key}` | {default} | {rule} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(configuration_table(), end="")
