"""``retry``: re-enqueue failed jobs (never one in flight), and redrive dead-lettered uploads."""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from cutouts_cli.commands.output import print_json, progress_bar
from cutouts_cli.retry import matching_failures, redrive_dead_letters, retry_failed
from cutouts_cli.target import Target, make_clients, region_of


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "retry",
        help="re-enqueue failed jobs, and redrive dead-lettered uploads",
        description="Reopen FAILED jobs (all, or filtered) and enqueue them again. Jobs still in flight are "
        "never touched, so nothing is paid for twice. Fix the cause first (a topped-up balance after "
        "gateway-insufficient-balance, a new key after gateway-unauthorized).",
    )
    parser.add_argument("--reason", action="append", help="only this failure reason (repeatable)")
    parser.add_argument("--prefix", help="only keys under this prefix (full, or relative to the input prefix)")
    parser.add_argument(
        "--include-dlq",
        action="store_true",
        help="also move every dead-lettered message back to the upload queue (filters do not apply)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be retried; change nothing")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, target: Target, out: Console, err: Console) -> int:
    clients = make_clients(target)
    now = time.time()
    jobs = matching_failures(clients, target, now, args.reason, args.prefix)
    with progress_bar(err, not args.json) as bar:
        task = bar.add_task("retrying" if not args.dry_run else "checking", total=len(jobs))
        result = retry_failed(
            clients, target, jobs, now, args.dry_run, region_of(target, clients), lambda n: bar.advance(task, n)
        )
    if args.include_dlq:
        redrive_dead_letters(clients, target, now, result)
    if args.json:
        print_json(result.summary())
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
