"""End to end on the local stack: S3 upload -> queue -> submit -> emulator -> callback -> cutout."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageOps

from cutouts import keys
from local.gateway_emulator import FaultConfig
from local.pipeline import LocalOptions, LocalPipeline

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text())["images"]
# An upload that is already cut out is its own master: it costs no gateway call.
CUT_OUT = [name for name, spec in MANIFEST.items() if spec.get("handling") == "already-cut-out"]
pillow_heif.register_heif_opener()


def _cutout(pipeline: LocalPipeline, input_key: str) -> tuple[Image.Image, dict[str, str]]:
    opts = pipeline.options
    out_key = keys.output_key_for(input_key, opts.input_prefix, opts.output_prefix)
    obj = pipeline.s3().get_object(Bucket=pipeline.resources.bucket, Key=out_key)
    assert obj["ContentType"] == "image/png"
    return Image.open(io.BytesIO(obj["Body"].read())), obj["Metadata"]


def _report(pipeline: LocalPipeline, input_key: str) -> dict:
    opts = pipeline.options
    report_key = keys.failure_key_for(input_key, opts.input_prefix, opts.failure_prefix)
    return json.loads(pipeline.s3().get_object(Bucket=pipeline.resources.bucket, Key=report_key)["Body"].read())


def _assert_right_cutouts(pipeline: LocalPipeline, input_keys: list[str], prefix: str = "") -> None:
    for name, spec in MANIFEST.items():
        key = pipeline.options.input_prefix + prefix + name
        assert key in input_keys
        image, metadata = _cutout(pipeline, key)
        # as a browser shows it: EXIF orientation applied, HEIC decoded (the pipeline normalises both)
        source = ImageOps.exif_transpose(Image.open(SAMPLES / "images" / name)).convert("RGB")
        assert image.mode == "RGBA" and image.size == source.size, name
        assert metadata["source-key"].endswith(name.replace(" ", "%20").split("/")[-1]) or metadata["source-key"]
        for point in [spec["subject"], *spec.get("subject_more", [])]:
            pixel = image.getpixel(tuple(point))
            assert pixel[3] >= 250, f"{name}: subject at {point} is not opaque ({pixel})"
            expected = source.getpixel(tuple(point))
            assert max(abs(a - b) for a, b in zip(pixel[:3], expected, strict=True)) <= 40, (
                f"{name}: the cutout at {point} is not this source's subject"
            )
        for point in [spec["background"], *spec.get("background_more", [])]:
            assert image.getpixel(tuple(point))[3] <= 5, f"{name}: background at {point} is not transparent"


def test_samples_become_transparent_cutouts_of_their_own_source():
    # Given the local stack with a well-behaved gateway
    with LocalPipeline(LocalOptions()) as pipeline:
        # When every sample image is uploaded
        input_keys = pipeline.upload_tree(SAMPLES / "images")
        accounting = pipeline.wait(input_keys, timeout=60)
        stats = pipeline.emulator.stats()
        # Then each has a cutout whose subject is opaque, background transparent, from its own source
        assert accounting.unaccounted == [] and accounting.failed == []
        _assert_right_cutouts(pipeline, input_keys)
        assert stats["accepted"] == len(input_keys) - len(CUT_OUT)
        assert all(n == 1 for n in stats["charged_by_source"].values())


def test_bad_inputs_get_reports_and_good_ones_still_finish():
    # Given good samples and bad inputs side by side
    jpeg = (SAMPLES / "images" / "red apple.jpg").read_bytes()
    bad = {
        "bad/empty.jpg": (b"", "empty-file"),
        "bad/notes.jpg": (b"just some text, not an image\n" * 4, "unsupported-type"),
        "bad/paper.jpg": (b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF\n", "unsupported-type"),
        "bad/cut short.jpg": (jpeg[: len(jpeg) // 2], "truncated-image"),
    }
    with LocalPipeline(LocalOptions()) as pipeline:
        # When all are uploaded
        good = pipeline.upload_tree(SAMPLES / "images")
        bad_keys = {pipeline.upload(name, data): reason for name, (data, reason) in bad.items()}
        accounting = pipeline.wait(good + list(bad_keys), timeout=60)
        stats = pipeline.emulator.stats()
        # Then the bad ones have a report with their reason and cost no gateway call
        assert sorted(accounting.failed) == sorted(bad_keys)
        for key, reason in bad_keys.items():
            assert _report(pipeline, key)["reason"] == reason
        assert stats["accepted"] == len(good) - len(CUT_OUT)
        # And the good ones are unaffected
        _assert_right_cutouts(pipeline, good)


def test_gateway_faults_still_end_every_input_once_charged():
    # Given a gateway that rate-limits, errors, fails, loses and repeats callbacks
    faults = FaultConfig(
        processing_delay=0.05,
        rate_429=0.25,
        rate_5xx=0.15,
        rate_error=0.2,
        rate_failed=0.1,
        rate_drop_callback=0.3,
        rate_duplicate_callback=0.3,
        seed=7,
    )
    # (no job here should come near the local maximum age of 90 s: a `timed-out` report means a job
    # was left in a state nothing brings it back from, as a waiter refused on 429s once was)
    with LocalPipeline(LocalOptions(faults=faults)) as pipeline:
        # When the samples are uploaded under two folders
        input_keys = pipeline.upload_tree(SAMPLES / "images")
        input_keys += [
            pipeline.upload(f"again/{p.relative_to(SAMPLES / 'images').as_posix()}", p.read_bytes())
            for p in sorted((SAMPLES / "images").rglob("*"))
            if p.is_file()
        ]
        # (a ceiling for a loaded machine: a passing run ends as soon as every input is accounted)
        accounting = pipeline.wait(input_keys, timeout=180)
        stats = pipeline.emulator.stats()
        # Then every input ended as a cutout or a report, and no object version was charged twice
        assert accounting.unaccounted == []
        assert max(stats["charged_by_source"].values()) == 1
        for key in accounting.failed:
            report = _report(pipeline, key)
            assert report["reason"] in {"model-failed", "gateway-error-exhausted", "gateway-gave-up"}, report
        for key in accounting.cutouts:
            image, _ = _cutout(pipeline, key)
            assert image.mode == "RGBA"


def test_stuck_jobs_end_with_a_timed_out_report():
    # Given a gateway whose jobs stay PROCESSING and never call back
    faults = FaultConfig(processing_delay=0.05, rate_stuck=1.0, seed=1)
    with LocalPipeline(LocalOptions(faults=faults, max_age_seconds=4, stale_after_seconds=1)) as pipeline:
        # When an image is uploaded
        key = pipeline.upload("stuck.jpg", (SAMPLES / "images" / "red apple.jpg").read_bytes())
        accounting = pipeline.wait([key], timeout=30)
        # Then it ends with a report saying it timed out
        assert accounting.failed == [key]
        assert _report(pipeline, key)["reason"] == "timed-out"


def test_cli_run_mirrors_outputs_and_prints_the_summary(tmp_path):
    # Given a folder with a good image and a bad one, with spaces and unicode in the names
    source = tmp_path / "in"
    (source / "déjà vu").mkdir(parents=True)
    (source / "déjà vu" / "a+b apple.jpg").write_bytes((SAMPLES / "images" / "red apple.jpg").read_bytes())
    (source / "empty.png").write_bytes(b"")
    # When `python -m local run` processes it, as a user would run it
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local",
            "run",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out"),
            "--timeout",
            "60",
        ],
        cwd=SAMPLES.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it exits 0, the output mirrors the bucket and the last line is the summary
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "2 inputs: 1 cutouts, 1 failed, 0 parked, 0 unaccounted"
    assert (tmp_path / "out" / "cutouts" / "déjà vu" / "a+b apple.jpg.png").is_file()
    assert json.loads((tmp_path / "out" / "failed" / "empty.png.json").read_text())["reason"] == "empty-file"
