"""``status``: jobs by state, the oldest open job, failures by reason with advice, queue depths."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from cutouts_cli.commands.output import print_json
from cutouts_cli.status import StatusReport, collect_status
from cutouts_cli.target import Target, make_clients


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "status",
        help="jobs by state, oldest open job, failures by reason, queue depths, spend against budgets",
        description="Counts of jobs by state, the oldest open job and its age, recent failures grouped by "
        "reason with what to do about each, the upload and dead-letter queue depths, and today's and this "
        "month's spend against the budgets with the number of parked jobs.",
    )
    parser.add_argument("--since-hours", type=float, default=24.0, help="failure window (default 24)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, target: Target, out: Console, err: Console) -> int:
    report = collect_status(make_clients(target), target, time.time(), since_hours=args.since_hours)
    if args.json:
        print_json(report.as_dict())
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
    for line in report.spend.lines() if report.spend else ():
        out.print(line)
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


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"
