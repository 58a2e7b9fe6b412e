"""Render requests: what the render queue carries, and the image library staying out of the other functions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cutouts.masters import master_key, normalised_key, output_report_key, source_key_of_master
from cutouts.render_requests import PREPARE, RENDER, BadRequest, RenderRequest, parse_request

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def test_a_request_survives_the_queue_unchanged() -> None:
    # Given a prepare request with every field
    request = RenderRequest(PREPARE, "b", "uploads/shop/ä b.heic", "j" * 32, "shop", "v1", "etag", "00A1", False)
    # When it is sent and read back
    # Then it is the same request
    assert parse_request(request.to_body()) == request
    assert parse_request(RenderRequest(RENDER, "b", "k", "j", rerender=True).to_body()).rerender is True


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"kind": "delete-everything", "bucket": "b", "key": "k", "job_id": "j"}),
        json.dumps({"kind": "render", "bucket": "b", "key": "k"}),
        json.dumps({"kind": "render", "bucket": "b", "key": {"x": 1}, "job_id": "j"}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
    ],
)
def test_anything_else_on_the_render_queue_is_refused_not_retried(body: str) -> None:
    # When a stranger's (or a malformed) message is read, it is a BadRequest: dropped with a log line
    with pytest.raises(BadRequest):
        parse_request(body)


def test_masters_live_outside_the_input_prefix_and_map_back_to_their_upload() -> None:
    # Given an upload under a sub-folder
    key = "uploads/shop/shoe.jpg"
    # Then its master is under the work prefix, keyed by its path, and maps back to it
    master = master_key(key, "uploads/", "work/")
    assert master == "work/masters/shop/shoe.jpg.png"
    assert source_key_of_master(master, "uploads/", "work/") == key
    assert source_key_of_master("work/normalised/abc", "uploads/", "work/") is None
    # And a normalised copy is one per job, a failed output's report names the output
    assert normalised_key("abc", "work/") == "work/normalised/abc"
    assert output_report_key(key, "uploads/", "failed/", "white") == "failed/shop/shoe.jpg.white.json"


def test_the_submit_webhook_and_reconcile_functions_never_load_the_image_library() -> None:
    # When the three handlers are imported in a fresh interpreter, as Lambda's cold start does
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import cutouts.handlers.submit, cutouts.handlers.webhook, cutouts.handlers.reconcile;"
        "print(sorted(m for m in ('PIL', 'pillow_heif') if m in sys.modules))"
    )
    env = {
        "CUTOUTS_TABLE_NAME": "t",
        "CUTOUTS_GATEWAY_KEY_SECRET": "k",
        "CUTOUTS_SIGNING_SECRET": "s",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    found = subprocess.run(
        [sys.executable, "-c", code, str(FUNCTIONS)], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    # Then neither Pillow nor pillow-heif was imported: their cold start is unchanged
    assert found.stdout.strip() == "[]"
