"""Output profiles end to end on the local stack: one paid result per image, every output derived from it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cutouts import keys
from cutouts.masters import master_key
from cutouts_cli.rerender import RenderTarget, rerender
from cutouts_cli.target import Clients
from local.gateway_emulator import FaultConfig
from local.pipeline import LocalOptions, LocalPipeline

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PROFILES = SAMPLES / "profiles.json"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text())["images"]
FAST = FaultConfig(processing_delay=0.05)
SHOP_TYPES = {"cutout": "image/png", "white": "image/jpeg", "web": "image/webp", "mask": "image/png"}


def _get(pipeline: LocalPipeline, key: str) -> tuple[bytes, dict[str, Any]]:
    obj = pipeline.s3().get_object(Bucket=pipeline.resources.bucket, Key=key)
    return obj["Body"].read(), obj


def _output(pipeline: LocalPipeline, input_key: str, suffix: str) -> tuple[Image.Image, str]:
    opts = pipeline.options
    data, obj = _get(pipeline, f"{opts.output_prefix}{keys.relative_key(input_key, opts.input_prefix)}{suffix}")
    return Image.open(io.BytesIO(data)), obj["ContentType"]


def _report(pipeline: LocalPipeline, report_key: str) -> dict[str, Any]:
    return json.loads(_get(pipeline, report_key)[0])


def _charges(pipeline: LocalPipeline) -> dict[str, int]:
    assert pipeline.emulator is not None
    return dict(pipeline.emulator.stats()["charged_by_source"])


def _upright_subject(pipeline: LocalPipeline, input_key: str, name: str) -> None:
    """The cutout has the upright size and an opaque subject / transparent background where the manifest says."""
    spec = MANIFEST[name]
    image, content_type = _output(pipeline, input_key, ".png")
    assert content_type == "image/png" and image.mode == "RGBA"
    assert image.size == (spec["width"], spec["height"]), f"{name} is not upright: {image.size}"
    for point in [spec["subject"], *spec.get("subject_more", [])]:
        assert image.getpixel(tuple(point))[3] >= 250, f"{name}: subject at {point} not opaque"
    for point in [spec["background"], *spec.get("background_more", [])]:
        assert image.getpixel(tuple(point))[3] <= 5, f"{name}: background at {point} not transparent"


def _events(pipeline: LocalPipeline, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The run's completion events, once ``count`` have arrived (a render's event follows its outputs)."""
    deadline = time.monotonic() + timeout
    while True:
        events = pipeline.events.drain()
        if len(events) >= count or time.monotonic() >= deadline:
            return events
        time.sleep(0.2)


def _created_after_outputs(pipeline: LocalPipeline, events: list[dict[str, Any]], shop: list[str]) -> None:
    """One event per job; a shop image's Cutout Created names its four outputs (never the master), all written."""
    assert len({e["detail"]["event_key"] for e in events}) == len(events)
    created = {e["detail"]["source"]["key"]: e["detail"] for e in events if e["detail-type"] == "Cutout Created"}
    every_key = pipeline.list_keys("")
    for key in shop:
        detail = created[key]
        assert [(o["profile"], o["output"]) for o in detail["outputs"]] == [("shop", name) for name in SHOP_TYPES]
        assert all(o["key"] in every_key and not o["key"].startswith("work/") for o in detail["outputs"])
        assert detail["failed_outputs"] == []


def test_a_profile_with_four_outputs_costs_one_charge_per_image_and_rerender_costs_none(tmp_path):
    # Given the local stack with the demo profiles (shop/: four outputs; the rest: today's cutout)
    with LocalPipeline(LocalOptions(faults=FAST, profiles_file=str(PROFILES))) as pipeline:
        # When every sample is uploaded, and one upload names a profile nobody declared
        inputs = pipeline.upload_tree(SAMPLES / "images")
        apple = (SAMPLES / "images" / "red apple.jpg").read_bytes()
        unknown = pipeline.put("shop/mystery.jpg", apple, metadata={"cutouts-profile": "nope"}).key
        accounting = pipeline.wait(inputs, timeout=120)
        assert accounting.unaccounted == [] and accounting.failed == []
        report_key = keys.failure_key_for(unknown, pipeline.options.input_prefix, pipeline.options.failure_prefix)
        pipeline.wait([unknown], timeout=30)

        # Then every shop image has its four outputs, with their content types
        shop = [k for k in inputs if k.startswith("uploads/shop/")]
        assert len(shop) == 3
        for key in shop:
            for name, content_type in SHOP_TYPES.items():
                suffix = (
                    ".png"
                    if name == "cutout"
                    else f".{name}.{ {'image/jpeg': 'jpg'}.get(content_type, content_type.split('/')[1]) }"
                )
                image, actual = _output(pipeline, key, suffix)
                assert actual == content_type, (key, name)
            white, _ = _output(pipeline, key, ".white.jpg")
            assert white.size == (2000, 2000) and white.getpixel((3, 3)) == pytest.approx((255, 255, 255), abs=3)
            mask, _ = _output(pipeline, key, ".mask.png")
            assert mask.mode == "L"
        # And the EXIF-rotated JPEG and the HEIC come out upright, the already cut-out PNG keeps its alpha
        for name in ("shop/sneaker.jpg", "shop/teapot.heic", "shop/lamp cutout.png"):
            _upright_subject(pipeline, "uploads/" + name, name)
        # And each image paid for cost exactly one charge; the cut-out one and the unknown profile none
        charges = _charges(pipeline)
        assert all(n == 1 for n in charges.values())
        assert len(charges) == len(inputs) - 1
        assert not any("lamp" in source or "mystery" in source for source in charges)
        assert _report(pipeline, report_key)["reason"] == "unknown-profile"
        # And no output, master or normalised copy triggered the pipeline: nothing outside uploads/ got a job
        every_key = pipeline.list_keys("")
        assert pipeline.emulator is not None and pipeline.emulator.stats()["accepted"] == len(inputs) - 1
        assert {k.split("/", 1)[0] for k in every_key} <= {"uploads", "cutouts", "failed", "work"}
        for key in shop:
            opts = pipeline.options
            assert master_key(key, opts.input_prefix, "work/") in every_key
        # And each job's end was announced once (the unknown profile's as a failure), a shop image's
        # (the cut-out one too) only after its outputs, naming them
        events = _events(pipeline, len(inputs) + 1)
        assert len(events) == len(inputs) + 1
        _created_after_outputs(pipeline, events, shop)

        # When the shop profile gains an output and rerender runs
        changed = json.loads(PROFILES.read_text())
        changed["profiles"]["shop"]["outputs"].append({"name": "thumb", "format": "png", "maxSize": 64})
        (tmp_path / "profiles.json").write_text(json.dumps(changed))
        pipeline.use_profiles(str(tmp_path / "profiles.json"))
        opts, res = pipeline.options, pipeline.resources
        target = RenderTarget(
            res.bucket, pipeline.render_queue.url, opts.input_prefix, opts.output_prefix, opts.failure_prefix, "work/"
        )
        clients = Clients(pipeline.s3(), res.client("sqs"), res.client("dynamodb"), res.table_name)
        result = rerender(
            clients, target, pipeline.profiles, prefix="shop/", only_profile=None, dry_run=False, timeout=60
        )
        # Then every shop image has the new output, the others were written again, and nothing was charged
        assert result.masters == 3 and result.waiting == [] and result.failed_outputs == []
        assert len(result.written) == 3 * 5
        for key in shop:
            thumb, content_type = _output(pipeline, key, ".thumb.png")
            assert content_type == "image/png" and max(thumb.size) == 64
        assert _charges(pipeline) == charges
        # And rerender announced nothing: it is no job's end
        assert len(_events(pipeline, len(events) + 1, timeout=2.0)) == len(events)


def test_a_failing_output_gets_its_report_and_a_failed_render_is_retried_without_a_new_charge(monkeypatch):
    import cutouts.rendering as rendering

    real = rendering.render_profile
    calls = {"n": 0}

    def flaky(master: bytes, profile: Any, max_pixels: int) -> Any:
        # The first render of all crashes (as a killed invocation would); "web" never renders
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError("injected: the first render dies")
        for spec, result in real(master, profile, max_pixels):
            yield spec, (rendering.RenderError("render-failed", "injected failure") if spec.name == "web" else result)

    monkeypatch.setattr(rendering, "render_profile", flaky)
    with LocalPipeline(LocalOptions(faults=FAST, profiles_file=str(PROFILES), visibility_timeout=2)) as pipeline:
        # Given one shop image
        key = pipeline.upload("shop/apple.jpg", (SAMPLES / "images" / "red apple.jpg").read_bytes())
        # When it is processed (its first render fails and comes back from the queue)
        accounting = pipeline.wait([key], timeout=90)
        # Then the failing output has its own report naming it, and the other three are written
        assert accounting.unaccounted == []
        opts = pipeline.options
        report = _report(pipeline, f"{opts.failure_prefix}shop/apple.jpg.web.json")
        assert report["reason"] == "render-failed" and '"web"' in report["message"]
        for suffix in (".png", ".white.jpg", ".mask.png"):
            _output(pipeline, key, suffix)
        assert f"{opts.output_prefix}shop/apple.jpg.web.webp" not in pipeline.list_keys(opts.output_prefix)
        # And the retried render cost no second gateway call
        assert calls["n"] >= 2
        assert list(_charges(pipeline).values()) == [1]
        # And the one Cutout Created, sent by the retried render, lists the three outputs and the failed one
        (event,) = _events(pipeline, 1)
        assert [o["output"] for o in event["detail"]["outputs"]] == ["cutout", "white", "mask"]
        assert event["detail"]["failed_outputs"] == [
            {"output": "web", "report_key": f"{opts.failure_prefix}shop/apple.jpg.web.json"}
        ]
