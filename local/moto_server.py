"""moto's server with two fidelity fixes, for the guarantees our code rests on.

1. DynamoDB writes are atomic, as they are in DynamoDB. moto checks a ConditionExpression and
   then writes, with nothing between the two to stop a concurrent request on another server
   thread. Our "never paid twice" claim rests on that guarantee, so the stand-in must give it too.
2. S3 event records carry ``versionId`` and ``sequencer``, as S3's do. moto leaves both out, which
   would send the local stack down a path production never takes (jobs keyed on the ETag, no
   ordering of overwrites). Each object version gets an increasing sequencer when it is stored,
   under one lock with the store itself, so the sequencers order versions as the bucket does.

And repairs of cost, not behaviour, found by profiling the server under ``make bench``:
- ReceiveMessage checked each message's retention by building every queue attribute, which
  counts every message in the queue: receiving was quadratic in the queue's depth (a 500-image
  upload spent most of moto's CPU there). It reads the queue's retention period directly now.
- Every request listed moto's package directory (``os.listdir`` of ~150 folders) to find its
  backend; the list is read once.
- werkzeug wrote an access-log line per request; it is off (``CUTOUTS_MOTO_ACCESS_LOG=1`` for it).

``python -m local.moto_server -H 127.0.0.1 -p PORT`` runs it.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
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


_S3_LOCK = threading.RLock()
_SEQUENCER = iter(range(1, 1 << 62))


def make_s3_events_faithful() -> None:
    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    put_object = S3Backend.put_object
    if getattr(put_object, "_cutouts_ordered", False):
        return

    def ordered_put_object(*args: Any, **kwargs: Any) -> Any:
        with _S3_LOCK:  # storing the version and numbering its event happen as one step
            return put_object(*args, **kwargs)

    functools.update_wrapper(ordered_put_object, put_object)
    ordered_put_object._cutouts_ordered = True  # type: ignore[attr-defined]
    S3Backend.put_object = ordered_put_object  # type: ignore[method-assign]

    get_s3_event = notifications._get_s3_event

    def s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = get_s3_event(event_name, bucket, key, notification_id)
        with _S3_LOCK:
            if getattr(key, "_cutouts_sequencer", None) is None:
                key._cutouts_sequencer = f"{next(_SEQUENCER):016X}"  # one per version, like S3's
        obj = event["Records"][0]["s3"]["object"]
        if getattr(key, "version_id", "null") not in (None, "null"):
            obj["versionId"] = key.version_id
        obj["sequencer"] = key._cutouts_sequencer
        return event

    notifications._get_s3_event = s3_event


def make_sqs_receive_linear() -> None:
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend.is_message_valid_based_on_retention_period, "_cutouts_linear", False):
        return

    def within_retention(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    within_retention._cutouts_linear = True  # type: ignore[attr-defined]
    SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign]


def make_backend_lookup_cached() -> None:
    from moto import backends

    if getattr(backends.list_of_moto_modules, "_cutouts_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())  # the installed package does not change

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules._cutouts_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    make_dynamodb_writes_atomic()
    make_s3_events_faithful()
    make_sqs_receive_linear()
    make_backend_lookup_cached()
    if os.environ.get("CUTOUTS_MOTO_ACCESS_LOG") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
