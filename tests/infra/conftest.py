"""Fixtures for the infrastructure tests: synthesize the stack once, offline, without bundling."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT, ROOT / "functions", Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from synth_kit import synth_stack  # noqa: E402

from infra.stack import CutoutsStack  # noqa: E402

Synth = Callable[..., tuple[cdk.App, CutoutsStack, Template]]


@pytest.fixture(scope="session")
def default_synth() -> tuple[cdk.App, CutoutsStack, Template]:
    """The stack with cdk.json's defaults (stage dev, new bucket, created gateway secret)."""
    return synth_stack()


@pytest.fixture(scope="session")
def template(default_synth: tuple[cdk.App, CutoutsStack, Template]) -> Template:
    return default_synth[2]


@pytest.fixture(scope="session")
def template_json(template: Template) -> dict[str, Any]:
    return dict(template.to_json())


@pytest.fixture(scope="session")
def synth() -> Synth:
    return synth_stack
