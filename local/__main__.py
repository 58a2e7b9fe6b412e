"""``python -m local run|up|upload|gateway``: the pipeline on this machine.

run     the whole pipeline on a folder, results copied to another; everything stops at the end
up      the whole local stack, kept running for the operations CLI until Ctrl-C
upload  put a folder's images into a running ``up`` stack
gateway the gateway emulator on its own
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutouts.settings_table import DEFAULTS as LOCAL_DEFAULTS
from local import arguments as checks
from local.gateway_emulator import add_gateway_arguments, run_gateway
from local.signals import Interrupted, stop_signals_raise
from local.stack_commands import add_up_arguments, add_upload_arguments, run_up, run_upload


def error(line: str) -> None:
    """One plain line on stderr (not rich: it wraps long lines at 80 columns when not on a terminal)."""
    print(f"error: {line}", file=sys.stderr)


@dataclass
class RunProgress:
    """How far a run got, for the one line an interruption prints."""

    total: int
    output: Path
    phase: str = "starting the local stack"
    uploaded: int = 0
    done: int = 0
    written: int = 0

    def interrupted_line(self, stop: Interrupted) -> str:
        if self.written:
            kept = f"{self.written} files were written under {self.output}/ (incomplete)"
        else:
            kept = f"nothing was written to {self.output}/ (results are copied there at the end of a run)"
        return (
            f"interrupted by {stop.name} while {self.phase}: {self.uploaded} of {self.total} files uploaded, "
            f"{self.done} processed; the local stack is stopped; {kept}"
        )


def _run(args: argparse.Namespace) -> int:
    source, output = Path(args.input), Path(args.output)
    problems = [
        problem
        for problem in (
            checks.check_input(source),
            checks.check_timeout(args.timeout),
            checks.check_gateway_url(args.gateway_url),
            checks.check_output(output, args.replace_output),
            checks.check_folders_apart(source, output),
        )
        if problem
    ]
    for problem in problems:
        error(problem)
    if problems:
        return 2
    files = checks.input_files(source)
    if not files:
        print(f"nothing to do: --input {source} has no files (no stack was started)", file=sys.stderr)
        return 0
    progress = RunProgress(total=len(files), output=output)
    with stop_signals_raise():
        try:
            return _run_pipeline(args, source, output, progress)
        except Interrupted as stop:
            print(progress.interrupted_line(stop), file=sys.stderr)
            return stop.exit_code


def _run_pipeline(args: argparse.Namespace, source: Path, output: Path, progress: RunProgress) -> int:
    # Metrics are switched off locally; Powertools still warns on every invocation that has none.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from local.pipeline import LocalOptions, LocalPipeline

    console = Console(stderr=True)
    options = LocalOptions(
        gateway_url=args.gateway_url,
        api_key=args.api_key,
        log_level=args.log_level,
        daily_budget_usd=args.daily_budget_usd,
        price_per_image_usd=args.price_per_image_usd,
        profiles_file=args.profiles,
    )
    pipeline = LocalPipeline(options)
    try:  # not `with`: a signal during start() must stop what start() had started
        pipeline.start()
        gateway = args.gateway_url or f"built-in emulator at {pipeline.emulator.base_url if pipeline.emulator else ''}"
        console.print(
            f"Local stack up: AWS stand-in {pipeline.aws.endpoint_url}, gateway {gateway}, "
            f"callbacks {pipeline.callback_base_url}"
        )
        progress.phase = "uploading"
        keys = pipeline.upload_tree(source)
        progress.uploaded = len(keys)
        console.print(f"Uploaded {len(keys)} files to s3://{pipeline.resources.bucket}/{options.input_prefix}")
        progress.phase = "processing"
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("processing", total=len(keys), detail="")

            def show(acc: Any) -> None:
                progress.done = len(acc.cutouts) + len(acc.failed) + len(acc.parked)
                bar.update(
                    task, completed=progress.done, detail=f"{len(acc.cutouts)} cutouts, {len(acc.failed)} failed"
                )

            accounting = pipeline.wait(keys, args.timeout, show)
        progress.phase = f"copying the results to {output}/"
        if checks.has_previous_results(output):
            shutil.rmtree(output)  # checked before the run: only a previous run's results, or --replace-output
            console.print(f"Replaced the previous results in {output}/")
        output.mkdir(parents=True, exist_ok=True)
        written = pipeline.mirror(output)
        events = pipeline.events.write(output / "events.jsonl")
        progress.written = written
    finally:
        pipeline.stop()
    for key in accounting.failed:
        console.print(f"  failed: {key} (see {output}/failed/)")
    for key in accounting.parked:
        console.print(f"  parked: {key} (the daily budget is spent; it resumes when the next UTC day opens)")
    for key in accounting.unaccounted:
        console.print(f"  [red]unaccounted[/red]: {key}")
    console.print(f"{written} files written under {output}/, {events} completion events in {output}/events.jsonl")
    print(accounting.summary())
    return 0 if not accounting.unaccounted else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole pipeline locally on a folder of images")
    run.add_argument("--input", required=True, help="folder of images to upload (relative paths are kept)")
    run.add_argument("--output", required=True, help="folder that receives cutouts/ and failed/")
    run.add_argument(
        "--replace-output",
        action="store_true",
        help="delete --output first even if it holds other files (a previous run's results are always replaced)",
    )
    run.add_argument("--gateway-url", help="a gateway implementing the reference API (default: built-in emulator)")
    run.add_argument("--api-key", help="the key for --gateway-url (default: the emulator's key)")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every input (default 120)")
    run.add_argument("--log-level", default="ERROR", help="the functions' log level (default ERROR)")
    run.add_argument(
        "--daily-budget-usd",
        type=float,
        default=LOCAL_DEFAULTS["daily_budget_usd"],
        help="the spend guard's budget for the UTC day; beyond it jobs are parked (default %(default)s)",
    )
    run.add_argument(
        "--price-per-image-usd",
        type=float,
        default=LOCAL_DEFAULTS["price_per_image_usd"],
        help="what the spend guard reserves per POST (default %(default)s)",
    )
    run.add_argument("--profiles", help="output profiles (JSON, see docs/profiles.md; default: today's PNG cutout)")
    run.set_defaults(func=_run)
    up = commands.add_parser("up", help="start the local stack and keep it running for the CLI until Ctrl-C")
    add_up_arguments(up)
    up.set_defaults(func=run_up)
    upload = commands.add_parser("upload", help="upload a folder of images into the stack `up` is running")
    add_upload_arguments(upload)
    upload.set_defaults(func=run_upload)
    gateway = commands.add_parser("gateway", help="run the gateway emulator on its own")
    add_gateway_arguments(gateway)
    gateway.set_defaults(func=run_gateway)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
