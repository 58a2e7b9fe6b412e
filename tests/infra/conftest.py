"""Fixtures for the infrastructure tests: synthesize the stack once, offline, without bundling."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT, ROOT / "functions"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aws_cdk as cdk  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

import app as cdk_app  # noqa: E402
from infra.stack import CutoutsStack  # noqa: E402

Synth = Callable[..., tuple[cdk.App, CutoutsStack, Template]]


def make_app(overrides: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> cdk.App:
    """An App with cdk.json's context (as `cdk synth` has it) plus test overrides; no bundling."""
    context = {**cdk_app.cdk_json_context(), "aws:cdk:bundling-stacks": [], **(overrides or {})}
    return cdk.App(context=context, outdir=outdir)


def synth_stack(
    overrides: Mapping[str, Any] | None = None, *, nag: bool = False
) -> tuple[cdk.App, CutoutsStack, Template]:
    app, stack = cdk_app.build_app(make_app(overrides), nag=nag)
    return app, stack, Template.from_stack(stack)


@pytest.fixture(scope="session")
def default_synth() -> tuple[cdk.App, CutoutsStack, Template]:
    """The stack with cdk.json's defaults (stage dev, new bucket, created gateway secret)."""
    return synth_stack()


@pytest.fixture(scope="session")
def template(default_synth: tuple[cdk.App, CutoutsStack, Template]) -> Template:
    return default_synth[2]


@pytest.fixture(scope="session")
def template_json(template: Template) -> dict[str, Any]:
    return template.to_json()


@pytest.fixture(scope="session")
def synth() -> Synth:
    return synth_stack
