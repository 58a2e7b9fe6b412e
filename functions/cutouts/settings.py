"""Function settings, read once at cold start into a typed object.

A missing or malformed variable fails loudly with its name, at init, not halfway through an image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from cutouts import constants as c


class SettingsError(ValueError):
    """A function was deployed with a missing or malformed setting."""


class Settings(NamedTuple):
    """Every value the functions read from their environment.

    Immutable records in this package are NamedTuples rather than frozen dataclasses: creating the
    class costs a tenth as much at import, which every cold start pays (see README, Performance).
    """

    table_name: str
    input_prefix: str
    output_prefix: str
    failure_prefix: str
    gateway_base_url: str
    gateway_model_path: str
    gateway_key_secret: str
    signing_secret: str
    callback_base_url: str
    presign_expiry_seconds: int
    max_image_bytes: int
    max_image_pixels: int
    max_media_bytes: int
    allowed_media_hosts: frozenset[str]
    allow_http_media: bool
    http_timeout_seconds: float
    max_attempts: int
    max_receives: int
    stale_after_seconds: int
    max_age_seconds: int
    in_doubt_grace_seconds: int
    dlq_url: str
    secret_max_age_seconds: int
    job_ttl_days: int
    dedup_enabled: bool
    retry_base_seconds: int


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"setting {name} is missing or empty")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"setting {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"setting {name}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"setting {name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"setting {name}={value} must be positive")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise SettingsError(f"setting {name}={raw!r} is not a boolean (true/false)")


def _prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not value.endswith("/") or value.startswith("/"):
        raise SettingsError(f"setting {name}={value!r} must be a key prefix like 'uploads/'")
    return value


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping (os.environ in Lambda)."""
    hosts = frozenset(h.strip().lower() for h in env.get(c.ENV_ALLOWED_MEDIA_HOSTS, "").split(",") if h.strip())
    settings = Settings(
        table_name=_required(env, c.ENV_TABLE_NAME),
        input_prefix=_prefix(env, c.ENV_INPUT_PREFIX, c.DEFAULT_INPUT_PREFIX),
        output_prefix=_prefix(env, c.ENV_OUTPUT_PREFIX, c.DEFAULT_OUTPUT_PREFIX),
        failure_prefix=_prefix(env, c.ENV_FAILURE_PREFIX, c.DEFAULT_FAILURE_PREFIX),
        gateway_base_url=(env.get(c.ENV_GATEWAY_BASE_URL) or c.DEFAULT_GATEWAY_BASE_URL).rstrip("/"),
        gateway_model_path=env.get(c.ENV_GATEWAY_MODEL_PATH) or c.DEFAULT_GATEWAY_MODEL_PATH,
        gateway_key_secret=_required(env, c.ENV_GATEWAY_KEY_SECRET),
        signing_secret=_required(env, c.ENV_SIGNING_SECRET),
        callback_base_url=env.get(c.ENV_CALLBACK_BASE_URL, "").rstrip("/"),
        presign_expiry_seconds=_int(env, c.ENV_PRESIGN_EXPIRY_SECONDS, c.DEFAULT_PRESIGN_EXPIRY_SECONDS, 60),
        max_image_bytes=_int(env, c.ENV_MAX_IMAGE_BYTES, c.DEFAULT_MAX_IMAGE_BYTES, 1),
        max_image_pixels=_int(env, c.ENV_MAX_IMAGE_PIXELS, c.DEFAULT_MAX_IMAGE_PIXELS, 1),
        max_media_bytes=_int(env, c.ENV_MAX_MEDIA_BYTES, c.DEFAULT_MAX_MEDIA_BYTES, 1),
        allowed_media_hosts=hosts or frozenset(c.DEFAULT_ALLOWED_MEDIA_HOSTS),
        allow_http_media=_bool(env, c.ENV_ALLOW_HTTP_MEDIA, False),
        http_timeout_seconds=_float(env, c.ENV_HTTP_TIMEOUT_SECONDS, c.DEFAULT_HTTP_TIMEOUT_SECONDS),
        max_attempts=_int(env, c.ENV_MAX_ATTEMPTS, c.DEFAULT_MAX_ATTEMPTS, 1),
        max_receives=_int(env, c.ENV_MAX_RECEIVES, c.DEFAULT_MAX_RECEIVES, 1),
        stale_after_seconds=_int(env, c.ENV_STALE_AFTER_SECONDS, c.DEFAULT_STALE_AFTER_SECONDS, 0),
        max_age_seconds=_int(env, c.ENV_MAX_AGE_SECONDS, c.DEFAULT_MAX_AGE_SECONDS, 1),
        in_doubt_grace_seconds=_int(env, c.ENV_IN_DOUBT_GRACE_SECONDS, c.DEFAULT_IN_DOUBT_GRACE_SECONDS, 0),
        dlq_url=env.get(c.ENV_DLQ_URL, ""),
        secret_max_age_seconds=_int(env, c.ENV_SECRET_MAX_AGE_SECONDS, c.DEFAULT_SECRET_MAX_AGE_SECONDS, 0),
        job_ttl_days=_int(env, c.ENV_JOB_TTL_DAYS, c.DEFAULT_JOB_TTL_DAYS, 1),
        dedup_enabled=_bool(env, c.ENV_DEDUP_ENABLED, True),
        retry_base_seconds=_int(env, c.ENV_RETRY_BASE_SECONDS, c.DEFAULT_RETRY_BASE_SECONDS, 0),
    )
    for name, prefix in (
        (c.ENV_OUTPUT_PREFIX, settings.output_prefix),
        (c.ENV_FAILURE_PREFIX, settings.failure_prefix),
    ):
        if prefix.startswith(settings.input_prefix) or settings.input_prefix.startswith(prefix):
            raise SettingsError(f"setting {name}={prefix!r} overlaps the input prefix: it would loop")
    return settings
