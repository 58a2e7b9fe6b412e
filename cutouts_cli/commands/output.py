"""How the commands print: a progress bar on stderr for people, JSON on stdout for scripts."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(console: Console, enabled: bool) -> Progress:
    """Off with --json, so a script reads nothing but the document."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=False, default=str))
