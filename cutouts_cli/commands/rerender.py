"""``rerender``: re-derive every output from the kept masters (no gateway call), with progress."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from cutouts import constants as c
from cutouts.profiles import Profiles
from cutouts.settings_table import DEFAULTS
from cutouts_cli.commands.output import print_json, progress_bar
from cutouts_cli.rerender import RenderTarget, rerender
from cutouts_cli.target import Target, TargetError, make_clients

REPO_ROOT = Path(__file__).resolve().parents[2]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "rerender",
        help="derive every output again from the kept masters (after a profile change; no gateway call)",
        description="Put one render request per kept master (the gateway's paid result) on the render queue and "
        "wait for the outputs the deployed profiles declare. The gateway is never called. Deploy the changed "
        "profiles first: the render function renders with the profiles it was deployed with.",
    )
    parser.add_argument("--prefix", help="only keys under this prefix (full, or relative to the input prefix)")
    parser.add_argument("--profile", help="only keys that render with this profile")
    parser.add_argument("--dry-run", action="store_true", help="count masters and outputs; request nothing")
    parser.add_argument(
        "--profiles-file",
        default=None,
        help="the profiles the stack was deployed with (default: profiles.json at the repository root, "
        "else the default profile)",
    )
    parser.add_argument("--render-queue-url", help="the render queue (instead of the stack's RenderQueueUrl)")
    parser.add_argument("--work-prefix", help=f"masters' prefix (default {DEFAULTS['work_prefix']})")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the outputs (default 600)")
    parser.set_defaults(func=run)
    return parser


def _render_target(args: argparse.Namespace, target: Target) -> RenderTarget:
    queue_url, work_prefix = args.render_queue_url, args.work_prefix
    if (not queue_url or not work_prefix) and getattr(args, "stack", None):
        import boto3

        cloudformation = boto3.client("cloudformation", region_name=target.region, endpoint_url=target.endpoint_url)
        stack = cloudformation.describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        queue_url = queue_url or outputs.get(c.OUTPUT_RENDER_QUEUE_URL)
        location = outputs.get(c.OUTPUT_WORK_LOCATION, "")
        head = f"s3://{target.bucket}/"
        if not work_prefix and location.startswith(head):
            work_prefix = location[len(head) :]
    if not queue_url:
        raise TargetError("give --render-queue-url, or --stack NAME of a stack with output profiles")
    return RenderTarget(
        bucket=target.bucket,
        render_queue_url=queue_url,
        input_prefix=target.input_prefix,
        output_prefix=target.output_prefix,
        failure_prefix=target.failure_prefix,
        work_prefix=work_prefix or DEFAULTS["work_prefix"],
    )


def _profiles(path: str | None) -> Profiles:
    if path:
        return Profiles.load(path)
    default = REPO_ROOT / DEFAULTS["profiles_file"]
    return Profiles.load(default) if default.exists() else Profiles.default()


def run(args: argparse.Namespace, target: Target, out: Console, err: Console) -> int:
    render_target = _render_target(args, target)
    profiles = _profiles(args.profiles_file)
    clients = make_clients(target)
    with progress_bar(err, not args.json) as bar:
        task = bar.add_task("rendering" if not args.dry_run else "counting", total=None)
        result = rerender(
            clients,
            render_target,
            profiles,
            prefix=args.prefix,
            only_profile=args.profile,
            dry_run=args.dry_run,
            timeout=args.timeout,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if args.json:
        print_json(result.summary())
        return 0 if not result.waiting else 1
    if args.dry_run:
        out.print(f"Would rerender {result.masters} masters: {result.expected_outputs} outputs")
    else:
        out.print(
            f"Rerendered {result.masters} masters: {len(result.written)} outputs written, "
            f"{len(result.failed_outputs)} failed (see their reports), {len(result.waiting)} not seen in time"
        )
    out.print("The gateway was not called (outputs are derived from the kept masters).")
    for reason, count in sorted(result.skipped.items()):
        out.print(f"  skipped {count}: {reason}")
    for key in result.waiting[:20]:
        out.print(f"  not seen: {key}")
    return 0 if not result.waiting else 1
