"""How long a lease lasts: long enough for the work its holder does, no longer than needed.

A lease whose holder died (a Lambda time-out, a crash) is what keeps a job or a key waiting, so
each is sized from the HTTP time-out that bounds the slowest step under it.
"""

from __future__ import annotations

from typing import Any


def claim_lease_seconds(settings: Any) -> float:
    """The claim covers the POST that follows it at once: its connect and read time-outs, with room."""
    return 2 * float(settings.http_timeout_seconds) + 10


def output_lease_seconds(settings: Any) -> float:
    """The output lease covers a status call and a download (three time-outs) and the writes after."""
    return 4 * float(settings.http_timeout_seconds) + 10
