"""Output profiles in the stack: validated at synth, shipped to the functions, rendered where memory is sized."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from cutouts import constants as c
from cutouts.profiles import Profiles
from cutouts.settings_table import DEFAULTS, ENV_NAMES
from infra.config import ConfigError, parse_config
from infra.profiles_config import PROFILES_PATH_IN_LAMBDA, load_profiles
from infra.rendering import PREPARE_PEAK_PER_RGBA_FRAME, render_memory_mb

DEMO_PROFILES = Path(__file__).resolve().parents[2] / "samples" / "profiles.json"


def _functions(template_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        v["Properties"]["Handler"]: v["Properties"]
        for v in template_json["Resources"].values()
        if v["Type"] == "AWS::Lambda::Function" and str(v["Properties"].get("Handler", "")).startswith("cutouts.")
    }


def test_a_bad_profile_fails_synth_naming_the_key_profile_output_and_field(tmp_path: Path) -> None:
    # Given a profiles file whose jpeg output asks for transparency
    bad = json.loads(DEMO_PROFILES.read_text())
    bad["profiles"]["shop"]["outputs"][1]["background"] = "transparent"
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(bad))
    # When the context names it
    with pytest.raises(ConfigError) as raised:
        parse_config({"profilesFile": str(path)})
    # Then the error names the context key, and the profile, output and field to fix
    message = str(raised.value)
    assert raised.value.key == "profilesFile"
    assert 'profile "shop"' in message and 'output "white"' in message and 'field "background"' in message


def test_no_profiles_file_at_the_default_path_means_todays_one_png_cutout(tmp_path: Path, monkeypatch) -> None:
    # Given the repository root has no profiles.json
    import infra.profiles_config as profiles_config

    monkeypatch.setattr(profiles_config, "REPO_ROOT", tmp_path)
    # When the stack's profiles are loaded
    profiles = load_profiles(parse_config({}))
    # Then they are the default profile alone: one PNG cutout, nothing to render
    assert profiles == Profiles.default() and not profiles.needs_rendering()


def test_the_functions_read_the_validated_profiles_from_their_layer(template_json: dict[str, Any]) -> None:
    # Then every pipeline function has the profiles layer and the path of its file; no env var holds the JSON
    layers = {k for k, v in template_json["Resources"].items() if v["Type"] == "AWS::Lambda::LayerVersion"}
    profiles_layer = next(k for k in layers if k.startswith("ProfilesLayer"))
    from infra.signing_key import SEED_HANDLER

    # (the signing-key seed is a deployment-time custom resource, not a pipeline function)
    functions = {h: p for h, p in _functions(template_json).items() if h != SEED_HANDLER}
    assert set(functions) == {c.SUBMIT_HANDLER, c.WEBHOOK_HANDLER, c.RECONCILE_HANDLER, c.RENDER_HANDLER}
    for handler, props in functions.items():
        assert {"Ref": profiles_layer} in props["Layers"], handler
        env = props["Environment"]["Variables"]
        assert env[ENV_NAMES["profiles_path"]] == PROFILES_PATH_IN_LAMBDA
        assert all(len(str(value)) < 1024 for value in env.values())


def test_render_function_has_the_imaging_layer_and_memory_from_the_measured_figure(
    template_json: dict[str, Any],
) -> None:
    props = _functions(template_json)[c.RENDER_HANDLER]
    # Then its memory covers a master at the pixel cap at the measured peak ratio, plus the runtime
    frame_mb = DEFAULTS["max_image_pixels"] * 4 / 2**20
    assert props["MemorySize"] == render_memory_mb(DEFAULTS["max_image_pixels"])
    assert props["MemorySize"] >= frame_mb * PREPARE_PEAK_PER_RGBA_FRAME + 160
    # (docs/profiles.md: 768 MB at the default 64 MP cap, 576 MB at 48 MP)
    assert (render_memory_mb(64_000_000), render_memory_mb(48_000_000)) == (768, 576)
    assert any(layer["Ref"].startswith("ImagingLayer") for layer in props["Layers"])
    # And the others keep their small memory and do not carry Pillow
    for handler in (c.SUBMIT_HANDLER, c.WEBHOOK_HANDLER, c.RECONCILE_HANDLER):
        other = _functions(template_json)[handler]
        assert other["MemorySize"] == 256
        assert not any(layer["Ref"].startswith("ImagingLayer") for layer in other["Layers"])


def test_render_queue_has_a_dead_letter_queue_and_drives_the_render_function(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "VisibilityTimeout": 6 * 300,
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": DEFAULTS["max_receives"]},
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"BatchSize": 1, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
    )


def test_normalised_copies_expire_and_masters_are_kept(template_json: dict[str, Any]) -> None:
    (bucket,) = [
        v
        for k, v in template_json["Resources"].items()
        if v["Type"] == "AWS::S3::Bucket" and k.startswith("StorageBucket")
    ]
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    normalised = [r for r in rules if r.get("Prefix") == f"{DEFAULTS['work_prefix']}normalised/"]
    assert normalised and normalised[0]["ExpirationInDays"] == 2
    assert not any(str(r.get("Prefix", "")).startswith(f"{DEFAULTS['work_prefix']}masters") for r in rules)


def test_no_output_or_work_key_can_notify_the_pipeline(template_json: dict[str, Any]) -> None:
    # Then the only notification filter is the input prefix, and the work prefix is outside it
    (notifications,) = [v for v in template_json["Resources"].values() if v["Type"] == "Custom::S3BucketNotifications"]
    rules = json.dumps(notifications["Properties"]["NotificationConfiguration"])
    assert f'"Value": "{DEFAULTS["input_prefix"]}"' in rules
    assert not DEFAULTS["work_prefix"].startswith(DEFAULTS["input_prefix"])
    with pytest.raises(ConfigError) as raised:
        parse_config({"workPrefix": f"{DEFAULTS['input_prefix']}work/"})
    assert raised.value.key == "workPrefix"


def test_the_reconciler_is_told_the_render_dead_letter_queue_and_no_other_function_is(
    template_json: dict[str, Any],
) -> None:
    # Given the render dead-letter queue in the template
    (dlq,) = [
        k
        for k, v in template_json["Resources"].items()
        if v["Type"] == "AWS::SQS::Queue" and k.startswith("RenderingRenderDeadLetterQueue")
    ]
    # Then the reconcile function's environment names it (it sweeps it into reports), and only its
    name = ENV_NAMES["render_dlq_url"]
    functions = _functions(template_json)
    assert functions[c.RECONCILE_HANDLER]["Environment"]["Variables"][name] == {"Ref": dlq}
    told = [h for h, p in functions.items() if name in p.get("Environment", {}).get("Variables", {})]
    assert told == [c.RECONCILE_HANDLER]
