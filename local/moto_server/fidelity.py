"""DynamoDB's and S3's guarantees that moto lacks: atomic conditional writes, ordered S3 events.

A condition and its write are one step in DynamoDB; moto checks and then writes with nothing
between the two to stop a concurrent request on another server thread, and our "never paid
twice" claim rests on that guarantee. S3 event records carry ``versionId`` and ``sequencer``;
moto leaves both out, which would send the local stack down a path production never takes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_WRITE_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def make_dynamodb_writes_atomic() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        original = getattr(DynamoDBBackend, name, None)
        if original is None or getattr(original, "_cutouts_atomic", False):
            continue

        def locked(*args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with _WRITE_LOCK:
                return __original(*args, **kwargs)

        functools.update_wrapper(locked, original)
        locked._cutouts_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


# Also held by s3_limits around a conditional copy: S3 orders a version's store, its event and
# a copy's ETag check as one sequence.
S3_LOCK = threading.RLock()
_SEQUENCER = iter(range(1, 1 << 62))


def make_s3_events_faithful() -> None:
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    put_object = S3Backend.put_object
    if getattr(put_object, "_cutouts_ordered", False):
        return

    def ordered_put_object(*args: Any, **kwargs: Any) -> Any:
        with S3_LOCK:  # storing the version and numbering its event happen as one step
            return put_object(*args, **kwargs)

    functools.update_wrapper(ordered_put_object, put_object)
    ordered_put_object._cutouts_ordered = True  # type: ignore[attr-defined]
    S3Backend.put_object = ordered_put_object  # type: ignore[method-assign]

    get_s3_event = notifications._get_s3_event

    def s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = get_s3_event(event_name, bucket, key, notification_id)
        with S3_LOCK:
            if getattr(key, "_cutouts_sequencer", None) is None:
                key._cutouts_sequencer = f"{next(_SEQUENCER):016X}"  # one per version, like S3's
        obj = event["Records"][0]["s3"]["object"]
        if getattr(key, "version_id", "null") not in (None, "null"):
            obj["versionId"] = key.version_id
        obj["sequencer"] = key._cutouts_sequencer
        return event

    notifications._get_s3_event = s3_event
