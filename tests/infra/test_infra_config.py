"""Context validation: every key is checked at synth time with a message that says what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cutouts import settings_table as t
from infra.config import CONTEXT_KEYS, ConfigError, StackConfig, parse_config

ROOT = Path(__file__).resolve().parents[2]


def cdk_json_context() -> dict[str, Any]:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


def test_cdk_json_deploys_the_table_defaults() -> None:
    # Given the context block of cdk.json (feature flags only: the defaults live in the settings table)
    context = cdk_json_context()
    # When it is parsed
    config = parse_config(context)
    # Then the repository's deployment is the default one
    assert config == parse_config({})


def test_an_absent_key_takes_the_table_default() -> None:
    # Given no context at all
    config = parse_config({})
    # Then every field is its setting's default, and the stage's derived values follow
    assert {field: getattr(config, field) for field in StackConfig.__dataclass_fields__} == {
        s.attr: s.default for s in t.CONTEXT_SETTINGS
    }
    assert config.stack_name == "Cutouts-dev" and config.retain_data is False
    assert config.bucket_name is None and config.gateway_key_secret_name is None and config.alarm_email is None


def test_stack_config_has_one_field_per_context_key_of_the_table() -> None:
    # A setting added to the table needs its typed field (and nothing else) here, in table order.
    assert tuple(StackConfig.__dataclass_fields__) == tuple(s.attr for s in t.CONTEXT_SETTINGS)
    assert tuple(s.key for s in t.CONTEXT_SETTINGS) == CONTEXT_KEYS


def test_documented_configuration_table_is_the_settings_table() -> None:
    # Given docs/configuration.md's table (from its header row to the first blank line, or the end)
    page = (ROOT / "docs" / "configuration.md").read_text() + "\n"
    start = page.index("| key | default | rule and meaning |")
    documented = page[start : page.index("\n\n", start) + 1]
    # Then it is exactly what the table generates (regenerate: python -m cutouts.settings_table)
    assert documented == t.configuration_table()


def test_cli_strings_are_converted() -> None:
    # Given values as `cdk synth -c key=value` passes them (strings)
    config = parse_config(
        {
            "maxConcurrency": "10",
            "webhookReservedConcurrency": "40",
            "dedup": "false",
            "allowedMediaHosts": "a.example.com, b.example.com",
            "httpTimeoutSeconds": "5",
            "stage": "prod",
        }
    )
    assert config.max_concurrency == 10
    assert config.dedup_enabled is False
    assert config.allowed_media_hosts == ("a.example.com", "b.example.com")
    assert config.http_timeout_seconds == 5.0
    assert config.stack_name == "Cutouts-prod" and config.retain_data is True


@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("stage", "Prod!", "lower-case"),
        ("bucketName", "My_Bucket", "not a valid S3 bucket name"),
        ("bucketName", "192.168.1.1", "not a valid S3 bucket name"),
        # (their meaning is checked against the stack: tests/infra/test_infra_deploy_ready.py)
        ("bucketRegion", 42, "expected a string"),
        ("bucketKmsKeyArn", ["arn:aws:kms:eu-west-1:111122223333:key/k"], "expected a string"),
        ("inputPrefix", "uploads", "must end with '/'"),
        ("inputPrefix", "", "must not be empty"),
        ("outputPrefix", "/cutouts/", "must not start with '/'"),
        ("failurePrefix", "failed//", "empty path segment"),
        ("gatewayBaseUrl", "http://gateway.pixazo.ai", "https://"),
        ("gatewayBaseUrl", "https://gateway.pixazo.ai/v1?x=1", "scheme and host only"),
        ("gatewayModelPath", "bria/request", "URL path starting with '/'"),
        ("gatewayKeySecretName", "bad name!", "Secrets Manager name"),
        ("presignExpirySeconds", 59, "between 60 and 604800"),
        ("presignExpirySeconds", 604801, "between 60 and 604800"),
        ("presignExpirySeconds", "soon", "whole number"),
        ("maxConcurrency", 1, "between 2 and 1000"),
        ("maxConcurrency", True, "whole number"),
        ("allowedMediaHosts", "https://cdn.example.com", "not a valid host name"),
        ("allowedMediaHosts", ["10.0.0.1"], "not a valid host name"),
        ("allowedMediaHosts", "*.r2.dev", "not a valid host name"),
        ("allowedMediaHosts", " , ", "at least one host name"),
        ("alarmEmail", "ops@", "not a valid e-mail"),
        ("maxImageBytes", 10, "between 1024 and"),
        ("maxImagePixels", 0, "between 1 and"),
        ("maxMediaBytes", -1, "between 1024 and"),
        ("httpTimeoutSeconds", 29, "between 1.0 and 20.0"),
        ("maxAttempts", 0, "between 1 and 10"),
        ("maxReceives", 1001, "between 1 and 1000"),
        ("staleAfterSeconds", 1, "between 30 and"),
        ("maxAgeSeconds", 10, "between 60 and"),
        ("inDoubtGraceSeconds", -5, "between 0 and"),
        ("secretMaxAgeSeconds", 7200, "between 0 and 3600"),
        ("reconcileEveryMinutes", 0, "between 1 and 1440"),
        ("logRetentionDays", 2, "retention period"),
        ("dedup", "yes", "true or false"),
        ("jobTtlDays", 0, "between 1 and 3650"),
        ("retryBaseSeconds", -1, "between 0 and 3600"),
        ("webhookReservedConcurrency", 0, "between 1 and 900"),
        ("webhookReservedConcurrency", 901, "at least 100 of the account's concurrency unreserved"),
        ("dailyBudgetUsd", -1, "between 0"),
        ("dailyBudgetUsd", 0.01, "less than one image"),
        ("monthlyBudgetUsd", "lots", "a number"),
        ("monthlyBudgetUsd", 0.005, "less than one image"),
        ("pricePerImageUsd", 0, "between 0.0001"),
        ("maxVersionsPerKeyPerDay", 0, "between 1 and 1000"),
        ("profilesFile", "no/such/profiles.json", "cannot read the profiles file"),
        ("workPrefix", "uploads/work/", "inside inputPrefix"),
        ("oversize", "shrink", "must be one of downscale, fail"),
        ("skipCutOut", "maybe", "true or false"),
    ],
)
def test_bad_value_names_the_key_and_the_fix(key: str, value: Any, hint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({key: value})
    assert raised.value.key == key
    assert f"'{key}'" in str(raised.value)
    assert hint in str(raised.value)


def test_every_key_has_a_validation_case() -> None:
    # A new context key must come with a rejection case above.
    source = Path(__file__).read_text()
    missing = [key for key in CONTEXT_KEYS if f'("{key}",' not in source]
    assert missing == []


@pytest.mark.parametrize(
    ("context", "key", "hint"),
    [
        ({"outputPrefix": "uploads/cutouts/"}, "outputPrefix", "inside inputPrefix"),
        ({"failurePrefix": "uploads/failed/"}, "failurePrefix", "inside inputPrefix"),
        ({"inputPrefix": "cutouts/in/"}, "inputPrefix", "'cutouts/in/' is inside outputPrefix 'cutouts/'"),
        ({"inputPrefix": "cutouts/"}, "inputPrefix", "'cutouts/' is the same as outputPrefix"),
        (
            {"inputPrefix": "cutouts/in/", "outputPrefix": "cutouts/"},
            "outputPrefix",
            "inputPrefix 'cutouts/in/' is inside",
        ),
        ({"outputPrefix": "failed/"}, "failurePrefix", "equals outputPrefix"),
        ({"outputPrefix": "uploads/"}, "outputPrefix", "inside inputPrefix"),
    ],
)
def test_prefixes_that_would_loop_are_refused(context: dict[str, str], key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(context)
    assert raised.value.key == key and hint in str(raised.value)


def test_sibling_prefix_with_same_start_is_allowed() -> None:
    # 'uploads-done/' is not inside 'uploads/': prefixes end with '/', so S3 filters are exact.
    assert parse_config({"outputPrefix": "uploads-done/"}).output_prefix == "uploads-done/"


def test_inconsistent_ages_are_refused() -> None:
    with pytest.raises(ConfigError, match="maxAgeSeconds"):
        parse_config({"maxAgeSeconds": 300, "staleAfterSeconds": 300})


def test_webhook_concurrency_too_low_for_the_callbacks_submit_can_cause_is_refused() -> None:
    # Given 10 submit slots: up to 10 x 2 submissions/s x 2 deliveries = 40 callbacks a second
    # When the webhook may run only 20 at once
    with pytest.raises(ConfigError) as raised:
        parse_config({"maxConcurrency": 10, "webhookReservedConcurrency": 20})
    # Then synthesis stops naming the key, the value and the fix
    assert raised.value.key == "webhookReservedConcurrency"
    assert "20" in str(raised.value) and "at least 40" in str(raised.value) and "maxConcurrency" in str(raised.value)


def test_callback_throttle_is_derived_from_submit_and_webhook_concurrency() -> None:
    # Given the defaults (5 submit slots, 20 webhook executions) and two larger deployments
    default = parse_config({})
    larger = parse_config({"maxConcurrency": 25, "webhookReservedConcurrency": 150})
    more_webhook = parse_config({"maxConcurrency": 25, "webhookReservedConcurrency": 300})
    # Then the rate is what submit can cause (slots x 2 submissions/s x 2 deliveries), whatever the webhook has
    rates = [cfg.callback_rate_limit for cfg in (default, larger, more_webhook)]
    assert rates == [20, 100, 100]
    # And the burst is what the webhook can run at once, whatever submit has
    bursts = [cfg.callback_burst_limit for cfg in (default, larger, more_webhook)]
    assert bursts == [20, 150, 300]


def test_webhook_concurrency_equal_to_the_callback_rate_is_enough() -> None:
    # Given 7 submit slots: up to 28 callbacks a second
    # Then a webhook reservation of exactly 28 is accepted, and one less is refused
    assert parse_config({"maxConcurrency": 7, "webhookReservedConcurrency": 28}).callback_burst_limit == 28
    with pytest.raises(ConfigError, match="at least 28"):
        parse_config({"maxConcurrency": 7, "webhookReservedConcurrency": 27})


@pytest.mark.parametrize("key", ["callbackRateLimit", "callbackBurstLimit"])
def test_former_throttle_keys_are_refused_with_the_reason(key: str) -> None:
    with pytest.raises(ConfigError, match="derived from maxConcurrency and webhookReservedConcurrency"):
        parse_config({key: 50})


def test_misspelt_key_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'inputPrefix'"):
        parse_config({"inputprefix": "in/"})


def test_unrelated_context_keys_are_ignored() -> None:
    parse_config(
        {"@aws-cdk/core:newStyleStackSynthesis": True, "aws:cdk:bundling-stacks": [], "acknowledged-issue-numbers": [1]}
    )


def test_unknown_key_is_refused_naming_it() -> None:
    # Given a key no setting has and no CDK feature uses
    with pytest.raises(ConfigError) as raised:
        parse_config({"unknownKey": "1"})
    # Then synthesis stops naming that key, not silently deploying the defaults
    assert raised.value.key == "unknownKey" and "unknown key" in str(raised.value)


def test_unknown_key_in_the_wrong_case_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'maxConcurrency'"):
        parse_config({"MAXCONCURRENCY": "3"})


def test_cdk_own_keys_pass() -> None:
    # Given the keys the CDK CLI and cdk.context.json put in the context
    parse_config(
        {
            "@aws-cdk/aws-iam:minimizePolicies": True,
            "aws:cdk:enable-path-metadata": True,
            "aws-cdk:enableDiffNoFail": "true",
            "cdk-defaults": "x",
            "availability-zones:account=123456789012:region=eu-west-1": ["eu-west-1a"],
            "acknowledged-issue-numbers": [1],
        }
    )
