"""Deployment settings: every CDK context key, parsed and validated once at synth time.

Context arrives typed from `cdk.json` (JSON numbers, booleans, lists) and as strings from
`cdk synth -c key=value`; both forms are accepted. A bad value stops synthesis with a
`ConfigError` naming the key and saying what to fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cutouts import constants as c
from cutouts import settings_table as t

# CloudWatch Logs accepts only these retention periods (days).
# (the subset aws_cdk.aws_logs.RetentionDays names; infra.functions maps them).
LOG_RETENTION_DAYS_ALLOWED: frozenset[int] = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

# Stages whose bucket, table and gateway-key secret are destroyed with the stack; every
# other stage retains them (losing production data by a typo in -c stage= is the worse error).
DESTROYABLE_STAGES: frozenset[str] = frozenset({"dev", "test"})

# The callback API is public, so its throttle is sized from what the pipeline can produce.
# Each of the submit function's maxConcurrency slots makes at most about 2 gateway submissions a
# second (a source read, a conditional claim and a POST take at least ~0.5 s), and each submission
# is called back at most about twice (the callback plus one gateway retry, or a resubmission's).
SUBMISSIONS_PER_SLOT_PER_SECOND = 2
CALLBACK_DELIVERIES_PER_SUBMISSION = 2
# AWS keeps at least 100 of an account's concurrency unreserved; the default account limit is 1000.
ACCOUNT_CONCURRENCY_DEFAULT = 1000
UNRESERVED_CONCURRENCY_MINIMUM = 100
MAX_WEBHOOK_RESERVED_CONCURRENCY = ACCOUNT_CONCURRENCY_DEFAULT - UNRESERVED_CONCURRENCY_MINIMUM
# Context keys that are no longer settings, with what replaced them.
_RETIRED_KEYS = {
    key: "no longer a setting: the callback throttle is derived from maxConcurrency and "
    "webhookReservedConcurrency (see infra/config.py); remove it"
    for key in ("callbackRateLimit", "callbackBurstLimit")
}

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_PREFIX_CHARS = re.compile(r"^[A-Za-z0-9!\-_.'()/ ]+$")
_URL_PATH = re.compile(r"^/[A-Za-z0-9\-._~/%]*$")


class ConfigError(ValueError):
    """A context value is missing, malformed or inconsistent; the message says which and how to fix it."""

    def __init__(self, key: str, problem: str, *, fix: str | None = None) -> None:
        fix = fix or f"set it in cdk.json or with -c {key}=..."
        super().__init__(f"Invalid CDK context '{key}': {problem} ({fix})")
        self.key = key


@dataclass(frozen=True)
class StackConfig:
    """Everything a deployer may change: one field per context key of `cutouts.settings_table`.

    Built by `parse_config`, which takes each default from the table; a test holds these fields to it.
    """

    stage: str
    bucket_name: str | None
    bucket_region: str | None
    bucket_kms_key_arn: str | None
    input_prefix: str
    output_prefix: str
    failure_prefix: str
    gateway_base_url: str
    gateway_model_path: str
    gateway_key_secret_name: str | None
    presign_expiry_seconds: int
    max_concurrency: int
    alarm_email: str | None
    max_image_bytes: int
    max_image_pixels: int
    max_media_bytes: int
    allowed_media_hosts: tuple[str, ...]
    http_timeout_seconds: float
    max_attempts: int
    max_receives: int
    stale_after_seconds: int
    max_age_seconds: int
    in_doubt_grace_seconds: int
    secret_max_age_seconds: int
    reconcile_every_minutes: int
    log_retention_days: int
    job_ttl_days: int
    dedup_enabled: bool
    retry_base_seconds: int
    daily_budget_usd: float
    monthly_budget_usd: float
    price_per_image_usd: float
    max_versions_per_key_per_day: int
    webhook_reserved_concurrency: int
    profiles_file: str
    work_prefix: str
    oversize: str
    skip_cut_out: bool

    def values(self) -> dict[str, Any]:
        """attribute -> value, for `settings_table.environment`."""
        return {s.attr: getattr(self, s.attr) for s in t.CONTEXT_SETTINGS}

    @property
    def callback_rate_limit(self) -> int:
        """Callbacks a second the pipeline can cause: maxConcurrency x 2 submissions/s x 2 deliveries."""
        return self.max_concurrency * SUBMISSIONS_PER_SLOT_PER_SECOND * CALLBACK_DELIVERIES_PER_SUBMISSION

    @property
    def callback_burst_limit(self) -> int:
        """Callbacks admitted at once: as many as the webhook can run at once.

        API Gateway invokes the webhook synchronously and Lambda queues no synchronous call: a
        request beyond the reserved concurrency is refused at once (a throttle), whatever the
        29-30 s integration timeout would allow. A larger burst would only turn API 429s into
        Lambda throttles; a smaller one would refuse callbacks the webhook could serve.
        """
        return self.webhook_reserved_concurrency

    @property
    def stack_name(self) -> str:
        return f"{c.STACK_NAME_PREFIX}{self.stage}"

    @property
    def retain_data(self) -> bool:
        """Retain the bucket, table and gateway key secret when the stack is deleted."""
        return self.stage not in DESTROYABLE_STAGES

    @property
    def gateway_host(self) -> str:
        return urlsplit(self.gateway_base_url).hostname or ""


# ---------------------------------------------------------------- value parsers


def _as_int(key: str, raw: Any, lo: int, hi: int) -> int:
    if isinstance(raw, bool):
        raise ConfigError(key, f"expected a whole number between {lo} and {hi}, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif (isinstance(raw, float) and raw.is_integer()) or (isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw)):
        value = int(raw)
    else:
        raise ConfigError(key, f"expected a whole number between {lo} and {hi}, got {raw!r}")
    if not lo <= value <= hi:
        raise ConfigError(key, f"{value} is out of range; use a whole number between {lo} and {hi}")
    return value


def _as_float(key: str, raw: Any, lo: float, hi: float) -> float:
    if isinstance(raw, bool):
        raise ConfigError(key, f"expected a number between {lo} and {hi}, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected a number between {lo} and {hi}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(key, f"{value} is out of range; use a number between {lo} and {hi}")
    return value


def _as_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "false"}:
        return raw.strip().lower() == "true"
    raise ConfigError(key, f"expected true or false, got {raw!r}")


def _as_str(key: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError(key, f"expected a string, got {raw!r}")
    return raw.strip()


def _optional_str(key: str, raw: Any) -> str | None:
    """An optional string: absent, null or empty means 'not set'."""
    if raw is None:
        return None
    value = _as_str(key, raw)
    return value or None


def _valid_host(host: str) -> bool:
    if not host or len(host) > 253 or host != host.lower():
        return False
    try:
        ipaddress.ip_address(host)
        return False  # an IP literal is not a host name (and would bypass DNS-based allow-listing)
    except ValueError:
        pass
    labels = host.split(".")
    return len(labels) >= 2 and all(_HOST_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _as_hosts(key: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = [part.strip() for part in raw.split(",")]
    elif isinstance(raw, list | tuple):
        items = [_as_str(key, part) for part in raw]
    else:
        raise ConfigError(key, f"expected a list of host names or a comma-separated string, got {raw!r}")
    items = [item for item in items if item]
    if not items:
        raise ConfigError(key, "at least one host name is required")
    for item in items:
        if not _valid_host(item):
            raise ConfigError(
                key,
                f"{item!r} is not a valid host name; give bare lower-case DNS names such as cdn.example.com "
                "(no scheme, port, path, wildcard or IP address)",
            )
    return tuple(dict.fromkeys(items))


def _as_prefix(key: str, raw: Any) -> str:
    value = _as_str(key, raw)
    if not value:
        raise ConfigError(key, "must not be empty; use a folder-like prefix such as 'uploads/'")
    if not value.endswith("/"):
        raise ConfigError(key, f"{value!r} must end with '/' (for example {value + '/'!r})")
    if value.startswith("/"):
        raise ConfigError(key, f"{value!r} must not start with '/'; S3 keys have no leading slash")
    if "//" in value:
        raise ConfigError(key, f"{value!r} must not contain an empty path segment ('//')")
    if len(value) > 512 or not _PREFIX_CHARS.match(value):
        raise ConfigError(key, f"{value!r} may use only letters, digits, space and !-_.'()/ (at most 512 characters)")
    return value


def _as_https_base_url(key: str, raw: Any) -> str:
    value = _as_str(key, raw)
    parts = urlsplit(value)
    if parts.scheme != "https":
        raise ConfigError(key, f"{value!r} must be an https:// URL")
    if not _valid_host(parts.hostname or ""):
        raise ConfigError(key, f"{value!r} has no valid host name")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ConfigError(key, f"{value!r} must be scheme and host only, e.g. https://gateway.example.com")
    return f"https://{parts.netloc}"


def _as_url_path(key: str, raw: Any) -> str:
    value = _as_str(key, raw)
    if not _URL_PATH.match(value) or value == "/" or "//" in value:
        raise ConfigError(key, f"{value!r} must be a URL path starting with '/', without query or fragment")
    return value


def _as_pattern(key: str, raw: Any, pattern: re.Pattern[str], what: str) -> str:
    value = _as_str(key, raw)
    if not pattern.match(value):
        raise ConfigError(key, f"{value!r} is not valid: {what}")
    return value


def _as_bucket_name(key: str, raw: Any) -> str | None:
    value = _optional_str(key, raw)
    if value is None:
        return None
    if (
        not _BUCKET.match(value)
        or ".." in value
        or ".-" in value
        or "-." in value
        or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value)
        or value.startswith("xn--")
    ):
        raise ConfigError(
            key,
            f"{value!r} is not a valid S3 bucket name (3-63 lower-case letters, digits, dots, hyphens; "
            "starts and ends with a letter or digit)",
        )
    return value


def _as_email(key: str, raw: Any) -> str | None:
    value = _optional_str(key, raw)
    if value is None:
        return None
    if len(value) > 254 or not _EMAIL.match(value):
        raise ConfigError(key, f"{value!r} is not a valid e-mail address")
    return value


def _as_reserved_concurrency(key: str, raw: Any) -> int:
    value = _as_int(key, raw, -(10**9), 10**9)
    if not 1 <= value <= MAX_WEBHOOK_RESERVED_CONCURRENCY:
        raise ConfigError(
            key,
            f"{value} is out of range; use a whole number between 1 and {MAX_WEBHOOK_RESERVED_CONCURRENCY}: AWS keeps "
            f"at least {UNRESERVED_CONCURRENCY_MINIMUM} of the account's concurrency unreserved (default account "
            f"limit {ACCOUNT_CONCURRENCY_DEFAULT}), so use less if the account's limit is lower or other functions "
            "reserve some",
        )
    return value


def _as_retention(key: str, raw: Any) -> int:
    value = _as_int(key, raw, 1, 3653)
    if value not in LOG_RETENTION_DAYS_ALLOWED:
        allowed = ", ".join(str(d) for d in sorted(LOG_RETENTION_DAYS_ALLOWED))
        raise ConfigError(key, f"{value} is not a CloudWatch Logs retention period; use one of {allowed}")
    return value


# ---------------------------------------------------------------- the keys

_Parser = Callable[[str, Any], Any]


def _parser(setting: t.Setting) -> _Parser:
    """How the context value of ``setting`` is read: its kind, with the table's bounds."""
    lo, hi = setting.lo, setting.hi
    if setting.kind in (t.INT, t.FLOAT) and (lo is None or hi is None):
        raise TypeError(f"settings_table: {setting.key} is a number and needs both bounds (lo, hi)")
    if setting.kind == t.INT:
        return lambda k, v: _as_int(k, v, int(lo or 0), int(hi or 0))
    if setting.kind == t.FLOAT:
        return lambda k, v: _as_float(k, v, float(lo or 0), float(hi or 0))
    return _PARSERS[setting.kind]


def _as_oversize(key: str, raw: Any) -> str:
    value = _as_str(key, raw).strip().lower()
    if value not in t.OVERSIZE_CHOICES:
        raise ConfigError(key, f"{value!r} must be one of {', '.join(t.OVERSIZE_CHOICES)}")
    return value


def _as_profiles_file(key: str, raw: Any) -> str:
    value = _as_str(key, raw).strip()
    if not value:
        raise ConfigError(key, "must name a JSON file, e.g. profiles.json")
    return value


_PARSERS: dict[str, _Parser] = {
    t.OVERSIZE: _as_oversize,
    t.PROFILES_FILE: _as_profiles_file,
    t.STAGE: lambda k, v: _as_pattern(
        k, v, _STAGE, "use 1-20 lower-case letters, digits or '-', starting with a letter"
    ),
    t.BUCKET: _as_bucket_name,
    t.STR: _optional_str,  # free text; its own check lives where it is used (e.g. infra/existing_bucket.py)
    t.PREFIX: _as_prefix,
    t.URL: _as_https_base_url,
    t.PATH: _as_url_path,
    t.SECRET_NAME: lambda k, v: (
        None
        if _optional_str(k, v) is None
        else _as_pattern(k, v, _SECRET_NAME, "a Secrets Manager name uses letters, digits and /_+=.@- (at most 512)")
    ),
    t.HOSTS: _as_hosts,
    t.EMAIL: _as_email,
    t.BOOL: _as_bool,
    t.LOG_RETENTION: _as_retention,
    t.RESERVED_CONCURRENCY: _as_reserved_concurrency,
}

# context key -> (StackConfig field, parser). The parser receives (key, raw value).
_KEYS: dict[str, tuple[str, _Parser]] = {s.key: (s.attr, _parser(s)) for s in t.CONTEXT_SETTINGS if s.key}

CONTEXT_KEYS: tuple[str, ...] = tuple(_KEYS)


def _check_prefixes(cfg: StackConfig, given: frozenset[str] = frozenset()) -> None:
    """No loops: nothing the pipeline writes may land under the prefix that triggers it.

    The error names the key the user set (``given``): ``-c inputPrefix=cutouts/`` is a mistake in
    inputPrefix, not in the outputPrefix default it collides with.
    """
    inp, out, fail = cfg.input_prefix, cfg.output_prefix, cfg.failure_prefix
    for key, other in (("outputPrefix", out), ("failurePrefix", fail), ("workPrefix", cfg.work_prefix)):
        blame_input = "inputPrefix" in given and key not in given
        if other.startswith(inp):
            if blame_input:
                raise ConfigError(
                    "inputPrefix",
                    f"{inp!r} {'is the same as' if inp == other else 'contains'} {key} {other!r}: every file "
                    "written there would trigger the pipeline "
                    f"again (a loop); choose an input prefix outside {other!r}, or set {key} too",
                )
            raise ConfigError(
                key,
                f"{other!r} is inside inputPrefix {inp!r}: every file written there would trigger the "
                "pipeline again (a loop); choose a prefix outside the input prefix",
            )
        if inp.startswith(other):
            if blame_input:
                raise ConfigError(
                    "inputPrefix",
                    f"{inp!r} is inside {key} {other!r}: uploads would be mixed with pipeline results; "
                    f"choose an input prefix outside {other!r}, or set {key} too",
                )
            raise ConfigError(
                key,
                f"inputPrefix {inp!r} is inside {other!r}: uploads would be mixed with pipeline results; "
                "choose separate prefixes",
            )
    if out == fail:
        raise ConfigError("failurePrefix", f"{fail!r} equals outputPrefix; failure reports need their own prefix")
    if cfg.work_prefix in (out, fail):
        raise ConfigError("workPrefix", f"{cfg.work_prefix!r} equals another prefix; masters need their own prefix")


def _key(attr: str) -> str:
    """The context key of a setting, as the table names it (so an error never drifts from it)."""
    return str(t.BY_ATTR[attr].key)


def _check_consistency(cfg: StackConfig) -> None:
    if cfg.max_age_seconds <= cfg.stale_after_seconds:
        raise ConfigError(
            _key("max_age_seconds"),
            f"{cfg.max_age_seconds} must be greater than {_key('stale_after_seconds')} ({cfg.stale_after_seconds}), "
            "or jobs are failed before the reconciler ever polls them",
        )
    # The webhook must keep up with the callbacks the pipeline can cause: at about one second a
    # callback, that takes one reserved execution per callback a second (and the burst, which
    # equals the reservation, is then at least the rate, as API Gateway expects).
    if cfg.webhook_reserved_concurrency < cfg.callback_rate_limit:
        raise ConfigError(
            "webhookReservedConcurrency",
            f"{cfg.webhook_reserved_concurrency} cannot keep up with the callbacks maxConcurrency "
            f"{cfg.max_concurrency} can cause (up to {cfg.callback_rate_limit} a second: {cfg.max_concurrency} "
            f"submit slots x {SUBMISSIONS_PER_SLOT_PER_SECOND} submissions/s x {CALLBACK_DELIVERIES_PER_SUBMISSION} "
            f"deliveries); set it to at least {cfg.callback_rate_limit} or lower maxConcurrency",
        )


def _check_budgets(cfg: StackConfig) -> None:
    """A budget above zero but below one image's price would park every job while looking open."""
    for attr in ("daily_budget_usd", "monthly_budget_usd"):
        budget = getattr(cfg, attr)
        if 0 < budget < cfg.price_per_image_usd:
            raise ConfigError(
                _key(attr),
                f"{budget:g} is less than one image ({_key('price_per_image_usd')} {cfg.price_per_image_usd:g}); "
                "use 0 to park every job on purpose, or at least the price of one image",
            )


# Keys that belong to the CDK itself, not to this app: feature flags (``@aws-cdk/...``), the CLI's
# own (``aws:cdk:*``, ``aws-cdk:*``, ``cdk-*``), lookups cached in cdk.context.json (they contain
# ':'), and the CLI's record of acknowledged notices.
_CDK_KEY_PREFIXES = ("@", "aws:", "aws-cdk", "cdk")
_CDK_KEYS = frozenset({"acknowledged-issue-numbers"})


def _check_key_is_known(key: str) -> None:
    """An unknown key is refused: a typo would otherwise deploy the default without a word."""
    if key in _RETIRED_KEYS:
        raise ConfigError(key, _RETIRED_KEYS[key])
    if key in _KEYS or key in _CDK_KEYS or key.startswith(_CDK_KEY_PREFIXES) or ":" in key:
        return
    by_lower = {known.lower(): known for known in _KEYS}
    close = difflib.get_close_matches(key, _KEYS, n=1, cutoff=0.75) or [
        by_lower[match] for match in difflib.get_close_matches(key.lower(), by_lower, n=1, cutoff=0.6)
    ]
    hint = f"did you mean '{close[0]}'?" if close else "the keys this app reads are in docs/configuration.md"
    raise ConfigError(key, f"unknown key; {hint}", fix="remove it from cdk.json or the -c options, or correct it")


def parse_config(context: Mapping[str, Any]) -> StackConfig:
    """Build a `StackConfig` from CDK context, or raise `ConfigError` naming the bad key."""
    for key in context:
        _check_key_is_known(key)
    values: dict[str, Any] = {}
    for key, (field, parser) in _KEYS.items():
        raw = context.get(key)
        values[field] = t.DEFAULTS[field] if raw is None else parser(key, raw)
    cfg = StackConfig(**values)
    _check_prefixes(cfg, frozenset(key for key in context if context[key] is not None))
    _check_consistency(cfg)
    _check_budgets(cfg)
    _check_profiles(cfg)
    return cfg


def _check_profiles(cfg: StackConfig) -> None:
    """The profiles file is validated at synth, so a mistake is named before anything is deployed."""
    from infra.profiles_config import load_profiles

    load_profiles(cfg)


def config_from_node(node: Any) -> StackConfig:
    """Read every known key from a construct node's context (cdk.json, -c, App(context=...))."""
    return parse_config(dict(node.get_all_context()))
