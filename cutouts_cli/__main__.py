"""Operate a Cutouts pipeline: backfill existing images, see status, retry failures.

Point it at a deployed stack with --stack NAME (the bucket, queues and table come from the
stack's CloudFormation outputs), or at any pipeline, such as the local stack, flag by flag:
--endpoint-url URL --bucket B --queue-url Q --dlq-url D --table T.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cutouts_cli.backfill import GATEWAY_PRICE_USD, plan_backfill, run_backfill
from cutouts_cli.retry import matching_failures, redrive_dead_letters, retry_failed
from cutouts_cli.status import StatusReport, collect_status
from cutouts_cli.target import Target, TargetError, make_clients, target_from_stack

EXAMPLES = """\
examples:
  python -m cutouts_cli --stack Cutouts-dev status
  python -m cutouts_cli --stack Cutouts-dev backfill --dry-run
  python -m cutouts_cli --stack Cutouts-dev backfill --prefix 2024/ --yes
  python -m cutouts_cli --stack Cutouts-dev retry --reason gateway-insufficient-balance
  python -m cutouts_cli --stack Cutouts-dev retry --include-dlq
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
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    backfill = commands.add_parser(
        "backfill",
        help="process images already in the bucket",
        description=(
            "Enqueue every object under the input prefix (or --prefix) through the same queue and path as a "
            "new upload. Skips objects whose cutout matches their current version, jobs still in flight, and "
            f"earlier failures (use retry). Prints the count and estimated gateway cost (${GATEWAY_PRICE_USD} "
            "per image) first. Safe to interrupt and run again."
        ),
    )
    backfill.add_argument("--prefix", help="only keys under this prefix (full, or relative to the input prefix)")
    backfill.add_argument(
        "--force",
        action="store_true",
        help="also redo objects that have a cutout or ended before (never jobs in flight); "
        "identical bytes are still copied from cache unless de-duplication is off",
    )
    backfill.add_argument("--dry-run", action="store_true", help="print the estimate only; enqueue nothing")
    backfill.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _add_target_options(backfill, suppress=True)
    backfill.set_defaults(func=cmd_backfill)

    status = commands.add_parser(
        "status",
        help="jobs by state, oldest open job, failures by reason, queue depths",
        description="Counts of jobs by state, the oldest open job and its age, recent failures grouped by "
        "reason with what to do about each, and the upload and dead-letter queue depths.",
    )
    status.add_argument("--since-hours", type=float, default=24.0, help="failure window (default 24)")
    _add_target_options(status, suppress=True)
    status.set_defaults(func=cmd_status)

    retry = commands.add_parser(
        "retry",
        help="re-enqueue failed jobs, and redrive dead-lettered uploads",
        description="Reopen FAILED jobs (all, or filtered) and enqueue them again. Jobs still in flight are "
        "never touched, so nothing is paid for twice. Fix the cause first (a topped-up balance after "
        "gateway-insufficient-balance, a new key after gateway-unauthorized).",
    )
    retry.add_argument("--reason", action="append", help="only this failure reason (repeatable)")
    retry.add_argument("--prefix", help="only keys under this prefix (full, or relative to the input prefix)")
    retry.add_argument(
        "--include-dlq",
        action="store_true",
        help="also move every dead-lettered message back to the upload queue (filters do not apply)",
    )
    retry.add_argument("--dry-run", action="store_true", help="show what would be retried; change nothing")
    _add_target_options(retry, suppress=True)
    retry.set_defaults(func=cmd_retry)
    return parser


# --- target -------------------------------------------------------------------------------


def resolve_target(args: argparse.Namespace) -> Target:
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


def _region(target: Target, clients: Any) -> str:
    return target.region or clients.s3.meta.region_name or "us-east-1"


# --- output -------------------------------------------------------------------------------


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=False, default=str))


# --- commands -----------------------------------------------------------------------------


def cmd_backfill(args: argparse.Namespace, target: Target, out: Console, err: Console) -> int:
    clients = make_clients(target)
    with _progress(err, not args.json) as bar:
        task = bar.add_task("checking objects", total=None)
        plan = plan_backfill(clients, target, args.prefix, args.force, lambda n: bar.update(task, completed=n))
    summary = plan.summary()
    if not args.json:
        out.print(
            f"[bold]{summary['to_enqueue']}[/bold] of {plan.listed} objects under s3://{target.bucket}/{plan.prefix} "
            f"need a cutout ({plan.total_bytes / 1e6:.1f} MB)."
        )
        for reason, count in sorted(plan.skipped.items()):
            out.print(f"  skipped {count}: {reason}")
        out.print(
            f"Estimated gateway cost: [bold]${plan.estimated_cost_usd:.2f}[/bold] "
            f"({len(plan.to_enqueue)} x ${GATEWAY_PRICE_USD}; less where identical images are copied from cache)"
        )
    if args.dry_run or not plan.to_enqueue:
        if args.json:
            _print_json({"plan": summary, "result": None})
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            err.print("Refusing to enqueue without confirmation: add --yes (or use --dry-run).")
            return 1
        question = f"Enqueue {len(plan.to_enqueue)} images (about ${plan.estimated_cost_usd:.2f})? [y/N] "
        if input(question).strip().lower() != "y":
            err.print("Nothing enqueued.")
            return 1
    try:
        with _progress(err, not args.json) as bar:
            task = bar.add_task("enqueueing", total=len(plan.to_enqueue))
            result = run_backfill(
                clients, target, plan, time.time(), lambda n: bar.advance(task, n), _region(target, clients)
            )
    except KeyboardInterrupt:
        err.print("Interrupted. Run the same command again: finished and queued images are not paid twice.")
        return 130
    if args.json:
        _print_json({"plan": summary, "result": result.summary()})
    else:
        out.print(
            f"Enqueued {result.enqueued} images"
            + (f" ({result.reopened} reopened)" if result.reopened else "")
            + (f"; {result.skipped_changed} changed meanwhile and were left alone" if result.skipped_changed else "")
            + ". Follow them with: status"
        )
    return 0


def cmd_status(args: argparse.Namespace, target: Target, out: Console, err: Console) -> int:
    report = collect_status(make_clients(target), target, time.time(), since_hours=args.since_hours)
    if args.json:
        _print_json(report.as_dict())
    else:
        print_status(report, out)
    return 0


def print_status(report: StatusReport, out: Console) -> None:
    jobs = Table(title="Jobs by state", title_justify="left")
    jobs.add_column("state")
    jobs.add_column("jobs", justify="right")
    for state, count in report.counts.items():
        jobs.add_row(state, str(count))
    out.print(jobs)
    if report.oldest_open:
        oldest = report.oldest_open
        out.print(
            f"Oldest open job: {oldest.key} ({oldest.status}), waiting {_age(oldest.age_seconds)} since {oldest.since}"
        )
    else:
        out.print("Oldest open job: none, nothing is pending")
    out.print(
        f"Upload queue: {report.queue_depth} waiting, {report.queue_in_flight} in flight; "
        f"dead-letter queue: {report.dlq_depth} waiting, {report.dlq_in_flight} in flight"
        + (" (redrive with: retry --include-dlq)" if report.dlq_depth or report.dlq_in_flight else "")
    )
    if not report.failures:
        out.print(f"No failures in the last {report.failures_window_hours:g} hours.")
        return
    failures = Table(title=f"Failures in the last {report.failures_window_hours:g} hours", title_justify="left")
    for column, justify in (("reason", "left"), ("jobs", "right"), ("latest", "left"), ("e.g.", "left")):
        failures.add_column(column, justify=justify)  # type: ignore[arg-type]
    for group in report.failures:
        failures.add_row(group.reason, str(group.count), group.latest_at or "", "\n".join(group.examples))
    out.print(failures)
    out.print("What to do:")
    for group in report.failures:
        out.print(f"  {group.reason}: {group.advice}")


def cmd_retry(args: argparse.Namespace, target: Target, out: Console, err: Console) -> int:
    clients = make_clients(target)
    now = time.time()
    jobs = matching_failures(clients, target, now, args.reason, args.prefix)
    with _progress(err, not args.json) as bar:
        task = bar.add_task("retrying" if not args.dry_run else "checking", total=len(jobs))
        result = retry_failed(
            clients, target, jobs, now, args.dry_run, _region(target, clients), lambda n: bar.advance(task, n)
        )
    if args.include_dlq:
        redrive_dead_letters(clients, target, now, result)
    if args.json:
        _print_json(result.summary())
        return 0
    verb = "Would retry" if args.dry_run else "Retried"
    out.print(f"{verb} {len(result.retried)} of {result.matched} failed jobs matching")
    by_reason: dict[str, int] = {}
    for job in result.retried:
        by_reason[job.reason or "unknown"] = by_reason.get(job.reason or "unknown", 0) + 1
    for reason, count in sorted(by_reason.items()):
        out.print(f"  {count} {reason}")
    for reason, count in sorted(result.skipped.items()):
        out.print(f"  skipped {count}: {reason}")
    if args.include_dlq:
        verb = "Would redrive" if args.dry_run else "Redrove"
        out.print(
            f"{verb} {result.dlq_moved} dead-lettered message{'' if result.dlq_moved == 1 else 's'}"
            + (f" ({result.dlq_reopened} failed jobs reopened)" if result.dlq_reopened else "")
            + (
                f"; {result.dlq_left_in_flight} are being read right now, run again in a minute"
                if result.dlq_left_in_flight
                else ""
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = Console(), Console(stderr=True)
    try:
        target = resolve_target(args)
    except TargetError as exc:
        err.print(f"[red]{exc}[/red]")
        return 2
    return int(args.func(args, target, out, err))


if __name__ == "__main__":
    sys.exit(main())
