"""Repairs of moto's cost, not its behaviour, found by profiling the server under ``make bench``.

ReceiveMessage built every queue attribute (counting every message) to check each message's
retention, quadratic in the queue's depth; every request listed moto's package directory to find
its backend. Now the retention period is read directly and the list once; what moto answers is
unchanged.
"""

from __future__ import annotations

from typing import Any


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
