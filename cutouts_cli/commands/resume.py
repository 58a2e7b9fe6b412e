"""``resume``: send parked jobs on now, rather than when the next UTC day (or month) opens."""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from cutouts_cli.commands.output import print_json
from cutouts_cli.resume import parked_jobs, resume_parked
from cutouts_cli.spend import collect_spend
from cutouts_cli.target import Target, make_clients, region_of


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "resume",
        help="send parked jobs on now (after raising the budget)",
        description="Jobs parked at the daily or monthly budget resume by themselves, oldest first, when the "
        "next UTC day or month opens. This sends them on now, oldest parked first, for example after you "
        "raised dailyBudgetUsd or monthlyBudgetUsd. The budget still holds: jobs beyond it are parked again, "
        "not paid.",
    )
    parser.add_argument("--prefix", help="only keys under this prefix (full, or relative to the input prefix)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be resumed; change nothing")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, target: Target, out: Console, err: Console) -> int:
    clients = make_clients(target)
    now = time.time()
    jobs = parked_jobs(clients, target, now, args.prefix)
    result = resume_parked(clients, target, jobs, now, args.dry_run, region_of(target, clients))
    figures = collect_spend(clients.store(), now)
    if args.json:
        print_json(result.summary() | {"spend": figures.as_dict()})
        return 0
    verb = "Would resume" if args.dry_run else "Resumed"
    out.print(f"{verb} {len(result.resumed)} of {result.matched} parked jobs matching")
    for reason, count in sorted(result.skipped.items()):
        out.print(f"  skipped {count}: {reason}")
    for line in figures.lines():
        out.print(line)
    if len(result.resumed) > figures.images_left:
        out.print(
            f"Only {figures.images_left} fit in the budget now: the other {len(result.resumed) - figures.images_left} "
            "will be parked again until it opens (raise dailyBudgetUsd / monthlyBudgetUsd to send them today)."
        )
    return 0
