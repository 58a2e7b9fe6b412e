"""``backfill``: enqueue the images already in the bucket, after showing the count and the cost."""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console

from cutouts_cli.backfill import GATEWAY_PRICE_USD, plan_backfill, run_backfill
from cutouts_cli.commands.output import print_json, progress_bar
from cutouts_cli.errors import ExitCode
from cutouts_cli.spend import collect_spend
from cutouts_cli.target import Target, make_clients, region_of


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "backfill",
        help="process images already in the bucket",
        description=(
            "Enqueue every object under the input prefix (or --prefix) through the same queue and path as a "
            "new upload. Skips objects whose cutout matches their current version, jobs still in flight, and "
            f"earlier failures (use retry). Prints the count and estimated gateway cost (${GATEWAY_PRICE_USD} "
            "per image) first. Safe to interrupt and run again."
        ),
    )
    parser.add_argument("--prefix", help="only keys under this prefix (full, or relative to the input prefix)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="also redo objects that have a cutout or ended before (never jobs in flight); "
        "identical bytes are still copied from cache unless de-duplication is off",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the estimate only; enqueue nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--over-budget",
        action="store_true",
        help="enqueue even more images than today's (and this month's) remaining budget allows; the spend guard "
        "still pays only within the budget and parks the rest until it opens",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, target: Target, out: Console, err: Console) -> int:
    clients = make_clients(target)
    with progress_bar(err, not args.json) as bar:
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
    figures = collect_spend(clients.store(), time.time())
    summary["spend"] = figures.as_dict()
    over = len(plan.to_enqueue) - figures.images_left
    if over > 0 and not args.json:
        for line in figures.lines():
            out.print(line)
        out.print(
            f"{len(plan.to_enqueue)} images exceed the remaining budget by {over} "
            f"(${over * figures.price_per_image_usd:.2f}): only {figures.images_left} would be paid now, the rest "
            "parked until the next UTC day (or month) opens."
        )
    if args.dry_run or not plan.to_enqueue:
        if args.json:
            print_json({"plan": summary, "result": None})
        return 0
    if over > 0 and not args.over_budget:
        message = (
            f"Refusing to enqueue {len(plan.to_enqueue)} images (${plan.estimated_cost_usd:.2f}): the budget has "
            f"room for {figures.images_left} (today ${figures.spent_today_usd:.2f} of "
            f"${figures.daily_budget_usd or 0:.2f}"
            + (
                f", this month ${figures.spent_month_usd:.2f} of ${figures.monthly_budget_usd:.2f}"
                if figures.monthly_budget_usd is not None
                else ""
            )
            + "). Narrow it with --prefix, raise the budget, or add --over-budget to enqueue all (the excess is "
            "parked, not paid, until budget opens)."
        )
        if args.json:
            print_json({"plan": summary, "result": None, "refused": message})
        else:
            err.print(message)
        return int(ExitCode.PARTIAL)
    if not args.yes:
        if not sys.stdin.isatty():
            err.print("Refusing to enqueue without confirmation: add --yes (or use --dry-run).")
            return 1
        question = f"Enqueue {len(plan.to_enqueue)} images (about ${plan.estimated_cost_usd:.2f})? [y/N] "
        if input(question).strip().lower() != "y":
            err.print("Nothing enqueued.")
            return 1
    try:
        with progress_bar(err, not args.json) as bar:
            task = bar.add_task("enqueueing", total=len(plan.to_enqueue))
            result = run_backfill(
                clients, target, plan, time.time(), lambda n: bar.advance(task, n), region_of(target, clients)
            )
    except KeyboardInterrupt:
        err.print("Interrupted. Run the same command again: finished and queued images are not paid twice.")
        return 130
    if args.json:
        print_json({"plan": summary, "result": result.summary()})
    else:
        out.print(
            f"Enqueued {result.enqueued} images"
            + (f" ({result.reopened} reopened)" if result.reopened else "")
            + (f"; {result.skipped_changed} changed meanwhile and were left alone" if result.skipped_changed else "")
            + ". Follow them with: status"
        )
    return 0
