"""Function settings, read once at cold start into a typed object.

Names, defaults and kinds come from `cutouts.settings_table`; a test holds `Settings`' fields to it.
A missing or malformed variable fails loudly with its name, at init, not halfway through an image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from cutouts import settings_table as t


class SettingsError(ValueError):
    """A function was deployed with a missing or malformed setting."""


class Settings(NamedTuple):
    """Every value the functions read from their environment (one field per table entry with an env var).

    Immutable records in this package are NamedTuples rather than frozen dataclasses: creating the
    class costs a tenth as much at import, which every cold start pays (see docs/performance.md).
    """

    table_name: str
    input_prefix: str
    output_prefix: str
    failure_prefix: str
    gateway_base_url: str
    gateway_model_path: str
    gateway_key_secret: str
    signing_secret: str
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
    secret_max_age_seconds: int
    job_ttl_days: int
    dedup_enabled: bool
    retry_base_seconds: int
    callback_base_url: str
    dlq_url: str
    daily_budget_usd: float
    monthly_budget_usd: float
    price_per_image_usd: float
    max_versions_per_key_per_day: int
    profiles_path: str
    work_prefix: str
    oversize: str
    skip_cut_out: bool
    render_queue_url: str
    render_dlq_url: str
    queue_url: str


def _str(env: Mapping[str, str], s: t.Setting) -> str:
    if s.default is None:  # required: the stack always sets it
        value = env.get(s.env or "", "").strip()
        if not value:
            raise SettingsError(f"setting {s.env} is missing or empty")
        return value
    return env.get(s.env or "") or s.default


def _int(env: Mapping[str, str], s: t.Setting) -> int:
    raw = env.get(s.env or "")
    if raw is None or raw == "":
        return int(s.default)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"setting {s.env}={raw!r} is not an integer") from None
    minimum = s.lo if s.floor is None else s.floor
    if minimum is not None and value < minimum:
        raise SettingsError(f"setting {s.env}={value} must be at least {int(minimum)}")
    return value


def _float(env: Mapping[str, str], s: t.Setting) -> float:
    raw = env.get(s.env or "")
    if raw is None or raw == "":
        return float(s.default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"setting {s.env}={raw!r} is not a number") from None
    if value < (s.floor or 0) or (s.floor is None and value <= 0):
        least = "positive" if s.floor is None else f"at least {s.floor:g}"
        raise SettingsError(f"setting {s.env}={value} must be {least}")
    return value


def _bool(env: Mapping[str, str], s: t.Setting) -> bool:
    raw = env.get(s.env or "", "").strip().lower()
    if not raw:
        return bool(s.default)
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise SettingsError(f"setting {s.env}={raw!r} is not a boolean (true/false)")


def _prefix(env: Mapping[str, str], s: t.Setting) -> str:
    value = env.get(s.env or "") or s.default
    if not value.endswith("/") or value.startswith("/"):
        raise SettingsError(f"setting {s.env}={value!r} must be a key prefix like 'uploads/'")
    return str(value)


def _url(env: Mapping[str, str], s: t.Setting) -> str:
    return _str(env, s).rstrip("/")


def _hosts(env: Mapping[str, str], s: t.Setting) -> frozenset[str]:
    hosts = frozenset(h.strip().lower() for h in env.get(s.env or "", "").split(",") if h.strip())
    return hosts or frozenset(s.default)


def _oversize(env: Mapping[str, str], s: t.Setting) -> str:
    value = (env.get(s.env or "") or s.default).strip().lower()
    if value not in t.OVERSIZE_CHOICES:
        raise SettingsError(f"setting {s.env}={value!r} must be one of {', '.join(t.OVERSIZE_CHOICES)}")
    return str(value)


_READERS: dict[str, Callable[[Mapping[str, str], t.Setting], Any]] = {
    t.OVERSIZE: _oversize,
    t.STR: _str,
    t.PATH: _str,
    t.URL: _url,
    t.PREFIX: _prefix,
    t.INT: _int,
    t.FLOAT: _float,
    t.BOOL: _bool,
    t.HOSTS: _hosts,
}


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping (os.environ in Lambda)."""
    settings = Settings(**{s.attr: _READERS[s.kind](env, s) for s in t.ENV_SETTINGS})
    for attr in ("output_prefix", "failure_prefix", "work_prefix"):
        prefix = getattr(settings, attr)
        if prefix.startswith(settings.input_prefix) or settings.input_prefix.startswith(prefix):
            raise SettingsError(f"setting {t.ENV_NAMES[attr]}={prefix!r} overlaps the input prefix: it would loop")
    return settings
