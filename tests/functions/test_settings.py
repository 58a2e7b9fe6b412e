"""The functions' settings are read from the environment the table describes, and fail loudly by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cutouts import settings_table as t
from cutouts.settings import Settings, SettingsError, load_settings

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
REQUIRED = {"table_name": "jobs", "gateway_key_secret": "gateway-key", "signing_secret": "signing"}


def env(**values: object) -> dict[str, str]:
    return t.environment({**REQUIRED, **values})


def test_settings_has_one_field_per_environment_variable_of_the_table() -> None:
    # A setting the functions read needs its typed field here (and its table entry), nothing else.
    assert Settings._fields == tuple(s.attr for s in t.ENV_SETTINGS)


def test_an_unset_variable_takes_the_table_default() -> None:
    # Given only the variables without a default
    settings = load_settings(env())
    # Then every other field is its table default
    for s in t.ENV_SETTINGS:
        if s.attr not in REQUIRED:
            expected = frozenset(s.default) if s.kind == t.HOSTS else s.default
            assert getattr(settings, s.attr) == expected, s.attr


def test_what_the_stack_writes_the_functions_read_back() -> None:
    # Given a value other than the default for every setting the functions read
    values = {
        **REQUIRED,
        "input_prefix": "in/",
        "output_prefix": "out/",
        "failure_prefix": "bad/",
        "gateway_base_url": "https://gw.example.com",
        "gateway_model_path": "/model",
        "presign_expiry_seconds": 120,
        "max_image_bytes": 2048,
        "max_image_pixels": 1000,
        "max_media_bytes": 4096,
        "allowed_media_hosts": ("a.example.com", "b.example.com"),
        "allow_http_media": True,
        "http_timeout_seconds": 2.5,
        "max_attempts": 4,
        "max_receives": 7,
        "stale_after_seconds": 60,
        "max_age_seconds": 600,
        "in_doubt_grace_seconds": 30,
        "secret_max_age_seconds": 10,
        "job_ttl_days": 2,
        "dedup_enabled": False,
        "retry_base_seconds": 3,
        "callback_base_url": "https://api.example.com",
        "dlq_url": "https://sqs.example.com/dlq",
        "daily_budget_usd": 12.5,
        "monthly_budget_usd": 300.0,
        "price_per_image_usd": 0.02,
        "max_versions_per_key_per_day": 5,
        "profiles_path": "/opt/cutouts-profiles/profiles.json",
        "work_prefix": "scratch/",
        "oversize": "fail",
        "skip_cut_out": False,
        "render_queue_url": "https://sqs.example.com/render",
        "render_dlq_url": "https://sqs.example.com/render-dlq",
        "queue_url": "https://sqs.example.com/uploads",
    }
    assert set(values) == set(Settings._fields)
    # When they pass through the environment
    settings = load_settings(t.environment(values))
    # Then the functions see exactly them
    assert settings._asdict() == {**values, "allowed_media_hosts": frozenset(values["allowed_media_hosts"])}


@pytest.mark.parametrize("attr", sorted(REQUIRED))
def test_a_missing_required_variable_is_named(attr: str) -> None:
    with pytest.raises(SettingsError, match=f"{t.ENV_NAMES[attr]} is missing"):
        load_settings({k: v for k, v in env().items() if k != t.ENV_NAMES[attr]})


@pytest.mark.parametrize(
    ("attr", "raw", "hint"),
    [
        ("max_attempts", "three", "is not an integer"),
        ("max_attempts", "0", "must be at least 1"),
        ("presign_expiry_seconds", "59", "must be at least 60"),
        ("http_timeout_seconds", "soon", "is not a number"),
        ("http_timeout_seconds", "0", "must be positive"),
        ("dedup_enabled", "maybe", "is not a boolean"),
        ("input_prefix", "/uploads/", "must be a key prefix"),
        ("output_prefix", "uploads/cutouts/", "overlaps the input prefix"),
    ],
)
def test_a_malformed_variable_names_itself_and_its_value(attr: str, raw: str, hint: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({**env(), t.ENV_NAMES[attr]: raw})
    assert t.ENV_NAMES[attr] in str(raised.value) and hint in str(raised.value)


def test_the_functions_accept_the_local_stacks_short_times_below_the_deploy_bounds() -> None:
    # Given staleAfterSeconds below its synth-time minimum (30), as the local stack runs it
    settings = load_settings(env(stale_after_seconds=3, max_age_seconds=5))
    # Then the functions take it: the floor, not the deploy bound, applies at cold start
    assert (settings.stale_after_seconds, settings.max_age_seconds) == (3, 5)


def test_each_deployed_function_is_given_exactly_its_variables() -> None:
    values = {s.attr: s.default if s.default is not None else "x" for s in t.SETTINGS}
    webhook, submit, reconcile = (set(t.environment(values, f)) for f in (t.WEBHOOK, t.SUBMIT, t.RECONCILE))
    spending = {t.ENV_NAMES[a] for a in ("daily_budget_usd", "monthly_budget_usd", "price_per_image_usd")}
    assert submit - webhook == {
        t.ENV_NAMES["callback_base_url"],
        t.ENV_NAMES["max_versions_per_key_per_day"],
        *spending,
    }
    assert spending <= reconcile  # the reconciler resumes parked jobs and resubmits: it pays too
    # (and it queues the upload again for a job stranded in RETRY without its message)
    assert reconcile - submit == {t.ENV_NAMES["dlq_url"], t.ENV_NAMES["render_dlq_url"], t.ENV_NAMES["queue_url"]}
    assert t.ENV_NAMES["allow_http_media"] not in reconcile  # the local stack's alone
    with pytest.raises(KeyError, match="dlq_url"):  # the stack must supply every one
        t.environment({k: v for k, v in values.items() if k != "dlq_url"}, t.RECONCILE)


def test_the_table_costs_a_cold_start_no_dataclass_and_no_cdk() -> None:
    # Given a fresh interpreter importing the functions' settings
    code = "import sys, cutouts.settings; print(sorted({'dataclasses', 'aws_cdk'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=FUNCTIONS, capture_output=True, text=True, check=True)
    # Then neither was imported
    assert done.stdout.strip() == "[]"
