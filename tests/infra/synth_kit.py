"""Building the app the way `cdk synth` does, for tests (a module name no other conftest uses)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

import app as cdk_app
from infra.stack import CutoutsStack


def make_app(overrides: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> cdk.App:
    """An App with cdk.json's context (as `cdk synth` has it) plus test overrides; no bundling.

    The outdir is always given: jsii's node process took its environment when aws_cdk was first
    imported, so the CDK_OUTDIR it sees may be the Makefile's cdk.out, not the temporary folder
    tests/conftest.py sets for the session.
    """
    context = {**cdk_app.cdk_json_context(), "aws:cdk:bundling-stacks": [], **(overrides or {})}
    return cdk.App(context=context, outdir=outdir or os.environ["CDK_OUTDIR"])


def synth_stack(
    overrides: Mapping[str, Any] | None = None, *, nag: bool = False
) -> tuple[cdk.App, CutoutsStack, Template]:
    app, stack = cdk_app.build_app(make_app(overrides), nag=nag)
    return app, stack, Template.from_stack(stack)
