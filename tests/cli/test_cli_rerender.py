"""``rerender`` against the local stack: outputs derived again from the kept masters, no gateway call."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cli_kit import image

from local.gateway_emulator import FaultConfig
from local.pipeline import LocalOptions, LocalPipeline

pytestmark = pytest.mark.e2e

PROFILES = Path(__file__).resolve().parents[2] / "samples" / "profiles.json"


def test_rerender_rewrites_every_output_from_the_masters_without_calling_the_gateway(cli_for):
    with LocalPipeline(
        LocalOptions(faults=FaultConfig(processing_delay=0.05), profiles_file=str(PROFILES))
    ) as pipeline:
        cli = cli_for(pipeline)
        # Given two shop images and one plain image, processed
        keys = [
            pipeline.upload("shop/apple.jpg", image("red apple.jpg")),
            pipeline.upload("shop/ball.png", image("beach ball.png")),
            pipeline.upload("plain/cactus.png", image("green cactus.png")),
        ]
        assert pipeline.wait(keys, timeout=90).unaccounted == []
        assert pipeline.emulator is not None
        accepted = pipeline.emulator.stats()["accepted"]
        flags = ["--render-queue-url", pipeline.render_queue.url, "--profiles-file", str(PROFILES)]

        # When rerender counts the shop masters
        plan = cli("rerender", *flags, "--prefix", "shop/", "--dry-run")
        # Then it finds two masters with four outputs each, and requests nothing
        assert (plan["masters"], plan["expected_outputs"], plan["requested"]) == (2, 8, 0)

        # When it runs for every key
        result = cli("rerender", *flags)
        # Then each output was written again (4 + 4 + the plain cutout), and the gateway was not called
        assert result["masters"] == 3 and result["outputs_written"] == 9 and result["outputs_not_seen"] == 0
        assert result["gateway_calls"] == 0
        time.sleep(1.0)  # anything a render could have set off would have reached the gateway by now
        assert pipeline.emulator.stats()["accepted"] == accepted

        # And a profile nobody declared is a usage error, not a run
        refused = cli("rerender", *flags, "--profile", "nope", expect=2)
        assert refused["error"]["kind"] == "usage" and "nope" in refused["error"]["message"]
