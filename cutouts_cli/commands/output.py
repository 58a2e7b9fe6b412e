"""How the commands print: a progress bar on stderr for people, JSON on stdout for scripts."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cutouts_cli.errors import Failure


def progress_bar(console: Console, enabled: bool) -> Progress:
    """Off with --json, so a script reads nothing but the document; off when stderr is not a terminal,
    where a bar's last frame would stand before an error's one line in a log."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
    )


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=False, default=str))


def print_failure(failure: Failure, exc: BaseException, as_json: bool, with_traceback: bool) -> None:
    """One line on stderr (plain, so no console wraps it), or with --json the error document on stdout,
    where a script already reads the command's answer. The traceback only when asked for."""
    if with_traceback:
        traceback.print_exception(exc, file=sys.stderr)
    if as_json:
        print_json(failure.as_dict())
    else:
        print(f"error: {failure.message}", file=sys.stderr)
