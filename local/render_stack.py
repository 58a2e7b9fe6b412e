"""The local stack's rendering part: the render queue and its dead-letter queue, and the profiles file.

Kept beside ``local.aws`` rather than in it: the render queue is what infra/rendering.py adds to
the stack, and the profiles are validated here exactly as at synth (``Profiles.load``), then handed
to the functions as the canonical JSON file the deployed functions read from their layer.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from cutouts.profiles import Profiles


class RenderQueue(NamedTuple):
    url: str
    arn: str
    dlq_url: str


def create_render_queue(sqs: Any, name: str, visibility_timeout: int, max_receives: int) -> RenderQueue:
    dlq_url = sqs.create_queue(QueueName=f"{name}-render-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=f"{name}-render",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return RenderQueue(url, arn, dlq_url)


def load_profiles(profiles_file: str | Path | None) -> Profiles:
    """The profiles a local run uses: the file's (validated, ProfileError if not), else the default."""
    return Profiles.load(profiles_file) if profiles_file else Profiles.default()


def write_canonical(profiles: Profiles) -> str:
    """The canonical JSON in a file of its own, as the functions' profiles layer holds it."""
    folder = Path(tempfile.mkdtemp(prefix="cutouts-local-profiles-"))
    path = folder / "profiles.json"
    path.write_text(profiles.to_json(), encoding="utf-8")
    return str(path)
