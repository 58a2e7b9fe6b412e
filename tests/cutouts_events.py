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
    """The job table's create_table arguments, from the same constants the stack uses."""
    from cutouts import constants as c

    schema = getattr(c, "TABLE_SCHEMA", None)
    if schema is not None:
        return copy.deepcopy(dict(schema))
    return {  # fallback for a constants module without TABLE_SCHEMA
        "AttributeDefinitions": [
            {"AttributeName": c.TABLE_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": c.STATUS_INDEX_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": c.STATUS_INDEX_SORT_KEY, "AttributeType": "N"},
            {"AttributeName": "content_hash", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": c.TABLE_PARTITION_KEY, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": c.STATUS_INDEX_NAME,
                "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [
                    {"AttributeName": c.STATUS_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": c.STATUS_INDEX_SORT_KEY, "KeyType": "RANGE"},
                ],
            },
            {
                "IndexName": "by_content",
                "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": "content_hash", "KeyType": "HASH"}],
            },
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
