#!/usr/bin/env python3
"""CDK app: `python app.py` (or `cdk synth`) synthesizes the Cutouts stack offline.

The stage comes from context (`-c stage=prod`); every other setting too (see
functions/cutouts/settings_table.py and infra/config.py). The app makes no AWS calls: the
account and region are left to deploy time.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parent
# The functions' package (`cutouts.constants`) is shared with the stack.
for path in (ROOT / "functions", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks, ServerlessChecks  # noqa: E402

from infra.config import ConfigError, config_from_node  # noqa: E402
from infra.stack import CutoutsStack  # noqa: E402


def cdk_json_context() -> dict[str, object]:
    """cdk.json's context, so `python app.py` synthesizes what `cdk synth` does (CLI values win)."""
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


def build_app(app: cdk.App | None = None, *, nag: bool = True) -> tuple[cdk.App, CutoutsStack]:
    """The app as `cdk synth` sees it; tests call this with their own App and context."""
    app = app or cdk.App(context=cdk_json_context())
    config = config_from_node(app.node)
    stack = CutoutsStack(
        app,
        config.stack_name,
        config=config,
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
    )
    cdk.Tags.of(stack).add("project", "cutouts")
    cdk.Tags.of(stack).add("stage", config.stage)
    if nag:
        # cdk-nag 3.x is a policy-validation plugin: findings fail synthesis (exit 1) and are
        # written to cdk.out/validation-report.json; acknowledgments sit on each resource.
        cdk.Validations.of(app).add_plugins(
            AwsSolutionsChecks(app, verbose=True),
            ServerlessChecks(app, verbose=True),
        )
    return app, stack


def cli_context(argv: list[str]) -> dict[str, object]:
    """``-c key=value`` (or ``--context``), as `cdk synth` takes them, so `make synth` can pass them through."""
    context: dict[str, object] = {}
    args = iter(argv)
    for arg in args:
        pair = next(args, "") if arg in ("-c", "--context") else arg.removeprefix("--context=")
        if arg not in ("-c", "--context") and not arg.startswith("--context="):
            raise SystemExit(f"error: unexpected argument {arg!r}; use -c key=value")
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: -c {pair!r} must be key=value")
        context[key] = value
    return context


def main() -> None:
    try:
        app, _ = build_app(cdk.App(context={**cdk_json_context(), **cli_context(sys.argv[1:])}))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    app.synth()


if __name__ == "__main__":
    main()
