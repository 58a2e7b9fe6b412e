"""The run's completion events, captured as a user's rule would receive them.

A rule on the stand-in's default bus forwards every ``cutouts`` event to a queue; ``write`` drains
it into ``events.jsonl``, one event per line in the envelope EventBridge hands a target (version,
id, detail-type, source, account, time, region, resources, detail). moto leaves ``account`` out
of the envelope: it is filled in with the local account, as AWS would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cutouts import constants as c
from local.aws import ACCOUNT

CAPTURE_NAME = "cutouts-events-capture"
ENVELOPE_ORDER = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


class EventCapture:
    def __init__(self, client: Callable[[str], Any]) -> None:
        self._client = client
        self._queue_url = ""
        self.events: list[dict[str, Any]] = []

    def start(self) -> None:
        """The rule and its queue; created before any function runs, so no event is missed."""
        sqs, events = self._client("sqs"), self._client("events")
        self._queue_url = sqs.create_queue(QueueName=CAPTURE_NAME)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=CAPTURE_NAME, EventPattern=json.dumps({"source": [c.EVENT_SOURCE]}))
        events.put_targets(Rule=CAPTURE_NAME, Targets=[{"Id": "capture", "Arn": arn}])

    def drain(self) -> list[dict[str, Any]]:
        """Every event delivered so far (kept, so a later drain returns them too)."""
        sqs = self._client("sqs")
        while True:
            reply = sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = reply.get("Messages", [])
            if not messages:
                return list(self.events)
            for message in messages:
                self.events.append(_envelope(json.loads(message["Body"])))
                sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def write(self, path: Path, settle_seconds: float = 1.0, max_wait_seconds: float = 10.0) -> int:
        """Write ``events.jsonl`` once no new event arrived for ``settle_seconds``; the number written.

        A job's end is visible a moment before its event is put (the same function does both).
        """
        deadline, seen, quiet_since = time.monotonic() + max_wait_seconds, -1, time.monotonic()
        while time.monotonic() < deadline:
            count = len(self.drain())
            if count != seen:
                seen, quiet_since = count, time.monotonic()
            elif time.monotonic() - quiet_since >= settle_seconds:
                break
            time.sleep(0.2)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(event, ensure_ascii=False) for event in self.events]
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return len(lines)


def _envelope(event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("account", ACCOUNT)
    ordered = {name: event[name] for name in ENVELOPE_ORDER if name in event}
    return ordered | {name: value for name, value in event.items() if name not in ordered}
