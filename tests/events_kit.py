"""The one loader of canonical events (tests/events/*.json, real shapes from the AWS documentation)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).parent / "events"
REGION = "us-east-1"
ACCOUNT = "123456789012"


@cache
def _event_doc(name: str) -> Any:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of tests/events/<name>.json (tests may change it freely)."""
    return copy.deepcopy(_event_doc(name))


def table_schema() -> dict[str, Any]:
    """The job table's create_table arguments: the schema the stack synthesizes (an infra test pins it)."""
    from cutouts import constants as c

    return copy.deepcopy(dict(c.TABLE_SCHEMA))
