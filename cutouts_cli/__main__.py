"""Operate a Cutouts pipeline: backfill existing images, see status, retry failures, resume parked jobs.

Point it at a deployed stack with --stack NAME (the bucket, queues and table come from the
stack's CloudFormation outputs), or at any pipeline, such as the local stack, flag by flag:
--endpoint-url URL --bucket B --queue-url Q --dlq-url D --table T.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rich.console import Console

from cutouts_cli.commands import backfill, rerender, resume, retry, status
from cutouts_cli.commands.output import print_failure
from cutouts_cli.errors import DEBUG_ENV, EXIT_CODES_HELP, describe
from cutouts_cli.target import Target, TargetError, target_from_stack

# In the order --help lists them.
COMMANDS = (backfill, status, retry, resume, rerender)

EXAMPLES = """\
examples:
  python -m cutouts_cli --stack Cutouts-dev status
  python -m cutouts_cli --stack Cutouts-dev backfill --dry-run
  python -m cutouts_cli --stack Cutouts-dev backfill --prefix 2024/ --yes
  python -m cutouts_cli --stack Cutouts-dev retry --reason gateway-insufficient-balance
  python -m cutouts_cli --stack Cutouts-dev retry --include-dlq
  python -m cutouts_cli --stack Cutouts-dev resume --prefix 2024/ --dry-run
  python -m cutouts_cli --stack Cutouts-dev rerender --prefix shop/ --dry-run
  python -m cutouts_cli status --json --endpoint-url http://127.0.0.1:5000 \\
      --bucket B --queue-url Q --dlq-url D --table T
"""


def _add_target_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The same options on the main parser and on every command, so they may come before or after it."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("where the pipeline is")
    group.add_argument(
        "--stack", default=default(os.environ.get("CUTOUTS_STACK")), help="deployed stack name (env CUTOUTS_STACK)"
    )
    group.add_argument("--region", default=default(None), help="AWS region (default: your AWS configuration)")
    group.add_argument("--endpoint-url", default=default(None), help="AWS endpoint, e.g. the local stack's moto")
    group.add_argument("--bucket", default=default(None), help="image bucket (instead of --stack)")
    group.add_argument("--queue-url", default=default(None), help="upload queue URL (instead of --stack)")
    group.add_argument("--dlq-url", default=default(None), help="dead-letter queue URL (instead of --stack)")
    group.add_argument("--table", default=default(None), help="job table name (instead of --stack)")
    group.add_argument("--input-prefix", default=default(None), help="input prefix (default uploads/)")
    group.add_argument("--output-prefix", default=default(None), help="output prefix (default cutouts/)")
    group.add_argument("--failure-prefix", default=default(None), help="failure report prefix (default failed/)")
    group.add_argument("--json", action="store_true", default=default(False), help="print JSON for scripts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cutouts_cli",
        description=__doc__,
        epilog=f"{EXAMPLES}\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        _add_target_options(command.register(subparsers), suppress=True)
    return parser


def resolve_target(args: argparse.Namespace) -> Target:
    """--stack reads the pipeline from the stack's outputs, else the flags name it; prefix flags override either."""
    if args.stack:
        target = target_from_stack(args.stack, args.region, args.endpoint_url)
    else:
        missing = [
            flag
            for flag, value in (
                ("--bucket", args.bucket),
                ("--queue-url", args.queue_url),
                ("--dlq-url", args.dlq_url),
                ("--table", args.table),
            )
            if not value
        ]
        if missing:
            raise TargetError(f"give --stack NAME, or all of: {', '.join(missing)}")
        target = Target(
            bucket=args.bucket,
            queue_url=args.queue_url,
            dlq_url=args.dlq_url,
            table=args.table,
            region=args.region,
            endpoint_url=args.endpoint_url,
        )
    overrides = {
        name: value
        for name, value in (
            ("input_prefix", args.input_prefix),
            ("output_prefix", args.output_prefix),
            ("failure_prefix", args.failure_prefix),
        )
        if value
    }
    if overrides:
        target = Target(**{**vars(target), **overrides})
    return target


def main(argv: list[str] | None = None) -> int:
    """The command's own exit code, or one line and the exit code errors.py gives what it ended on."""
    args = build_parser().parse_args(argv)
    out, err = Console(), Console(stderr=True)
    target: Target | None = None
    try:
        target = resolve_target(args)
        return int(args.func(args, target, out, err))
    except (Exception, KeyboardInterrupt) as exc:
        failure = describe(exc, target)
        print_failure(failure, exc, as_json=args.json, with_traceback=bool(os.environ.get(DEBUG_ENV)))
        return int(failure.code)


if __name__ == "__main__":
    sys.exit(main())
