"""``python -m local run ...`` runs the pipeline on a folder; ``python -m local gateway`` the emulator."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from local.gateway_emulator import add_gateway_arguments, run_gateway


def _run(args: argparse.Namespace) -> int:
    # Metrics are switched off locally; Powertools still warns on every invocation that has none.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from local.pipeline import LocalOptions, LocalPipeline

    console = Console(stderr=True)
    source = Path(args.input)
    if not source.is_dir():
        console.print(f"[red]--input {source} is not a directory[/red]")
        return 2
    options = LocalOptions(
        gateway_url=args.gateway_url, api_key=args.api_key, log_level=args.log_level, profiles_file=args.profiles
    )
    output = Path(args.output)
    with LocalPipeline(options) as pipeline:
        gateway = args.gateway_url or f"built-in emulator at {pipeline.emulator.base_url if pipeline.emulator else ''}"
        console.print(
            f"Local stack up: AWS stand-in {pipeline.aws.endpoint_url}, gateway {gateway}, "
            f"callbacks {pipeline.callback_base_url}"
        )
        keys = pipeline.upload_tree(source)
        console.print(f"Uploaded {len(keys)} files to s3://{pipeline.resources.bucket}/{options.input_prefix}")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("processing", total=len(keys), detail="")

            def show(acc):  # type: ignore[no-untyped-def]
                bar.update(
                    task,
                    completed=len(acc.cutouts) + len(acc.failed),
                    detail=f"{len(acc.cutouts)} cutouts, {len(acc.failed)} failed",
                )

            accounting = pipeline.wait(keys, args.timeout, show)
        written = pipeline.mirror(output)
    for key in accounting.failed:
        console.print(f"  failed: {key} (see {output}/failed/)")
    for key in accounting.unaccounted:
        console.print(f"  [red]unaccounted[/red]: {key}")
    console.print(f"{written} files written under {output}/")
    print(accounting.summary())
    return 0 if not accounting.unaccounted else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole pipeline locally on a folder of images")
    run.add_argument("--input", required=True, help="folder of images to upload (relative paths are kept)")
    run.add_argument("--output", required=True, help="folder that receives cutouts/ and failed/")
    run.add_argument("--gateway-url", help="a gateway implementing the reference API (default: built-in emulator)")
    run.add_argument("--api-key", help="the key for --gateway-url (default: the emulator's key)")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every input (default 120)")
    run.add_argument("--log-level", default="ERROR", help="the functions' log level (default ERROR)")
    run.add_argument("--profiles", help="output profiles (JSON, see docs/profiles.md; default: today's PNG cutout)")
    run.set_defaults(func=_run)
    gateway = commands.add_parser("gateway", help="run the gateway emulator on its own")
    add_gateway_arguments(gateway)
    gateway.set_defaults(func=run_gateway)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
