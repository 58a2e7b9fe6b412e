"""Messages on the render queue: what the render function is asked to do, as one small JSON body.

``render``: derive every output of a job's profile from its master (after the webhook stored it,
or when ``rerender`` asks again). ``prepare``: an upload the gateway cannot take as it is
(HEIC, 16-bit, CMYK, rotated, too many pixels) or that is already cut out; the render function
has the memory and the image library for it, the submit function has neither.
No Pillow here: the webhook and the submit function import this module.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

RENDER = "render"
PREPARE = "prepare"


class RenderRequest(NamedTuple):
    kind: str  # RENDER | PREPARE
    bucket: str
    key: str
    job_id: str
    profile: str | None = None
    version_id: str | None = None  # PREPARE: the upload's version
    etag: str | None = None
    sequencer: str | None = None  # PREPARE: handed back with the upload to submission
    rerender: bool = False  # RENDER asked by an operator: counts as such in logs

    def to_body(self) -> str:
        return json.dumps({k: v for k, v in self._asdict().items() if v not in (None, False)}, sort_keys=True)


class BadRequest(ValueError):
    """A render queue message that is not ours: dropped with a log line, never retried."""


def parse_request(body: str) -> RenderRequest:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("the message body is not JSON") from None
    if not isinstance(doc, dict) or doc.get("kind") not in (RENDER, PREPARE):
        raise BadRequest("the message is not a render request")
    fields: dict[str, Any] = {}
    for name in RenderRequest._fields:
        value = doc.get(name)
        if name == "rerender":
            fields[name] = value is True
        elif value is not None and not isinstance(value, str):
            raise BadRequest(f"field {name} must be text")
        else:
            fields[name] = value
    if not all(fields[name] for name in ("bucket", "key", "job_id")):
        raise BadRequest("bucket, key and job_id are required")
    return RenderRequest(**fields)


def send_request(sqs: Any, queue_url: str, request: RenderRequest) -> None:
    if not queue_url:
        raise RuntimeError("no render queue is configured (CUTOUTS_RENDER_QUEUE_URL)")
    sqs.send_message(QueueUrl=queue_url, MessageBody=request.to_body())
