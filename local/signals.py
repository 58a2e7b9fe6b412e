"""Ctrl-C and SIGTERM end a local command cleanly: one exception, raised once, in the main thread.

The default behaviours are both wrong for a command that owns servers and a child process:
SIGINT prints a KeyboardInterrupt traceback from wherever the main thread was, and SIGTERM ends
the process at once, with no ``finally`` run and the moto server left holding its port. Here both
raise :class:`Interrupted`, so the ``with`` blocks that started things stop them, and the command
prints one line and exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell
reports a process a signal ended.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """A stop signal arrived. A BaseException, so no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Inside the block, the first SIGINT or SIGTERM raises :class:`Interrupted`; later ones are
    ignored, so a second Ctrl-C cannot cut the clean-up short (it takes a second or two)."""
    arrived: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if arrived:
            return
        arrived.append(signum)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
