"""moto's server with one fidelity fix: DynamoDB writes are atomic, as they are in DynamoDB.

moto checks a ConditionExpression and then writes, with nothing between the two to stop a
concurrent request on another server thread; DynamoDB guarantees the pair is atomic. Our
"never paid twice" claim rests on that guarantee, so the stand-in must give it too.

``python -m local.moto_server -H 127.0.0.1 -p PORT`` runs it.
"""

from __future__ import annotations

import functools
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


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    make_dynamodb_writes_atomic()
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
