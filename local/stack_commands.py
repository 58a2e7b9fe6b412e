"""``python -m local up`` and ``python -m local upload``: see :mod:`local.stack_session`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from local import arguments as checks
from local.signals import Interrupted, stop_signals_raise
from local.stack_session import (
    SessionError,
    StackSession,
    default_state_file,
    publish_stack_outputs,
    read_state,
    remove_state,
    session_of,
    write_state,
)

READY_LINE = "Local stack ready (Ctrl-C to stop). In another shell, paste:"


def _error(line: str) -> None:
    print(f"error: {line}", file=sys.stderr)


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway-url", help="a gateway implementing the reference API (default: built-in emulator)")
    parser.add_argument("--api-key", help="the key for --gateway-url (default: the emulator's key)")
    parser.add_argument("--profiles", metavar="FILE", help="output profiles file, passed to the functions")
    parser.add_argument("--log-level", default="ERROR", help="the functions' log level (default ERROR)")
    parser.add_argument(
        "--state", type=Path, default=default_state_file(), help="where to write where the stack is (for upload)"
    )


def add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="folder of images (relative paths are kept under the prefix)")
    parser.add_argument(
        "--wait", type=float, metavar="SECONDS", help="then wait up to this long for each image's cutout or report"
    )
    parser.add_argument(
        "--state", type=Path, default=default_state_file(), help="the state file `up` wrote (default: its default)"
    )


def _local_options(args: argparse.Namespace) -> Any:
    """LocalOptions for ``up``; ``profiles_file`` only when given, so a build without it still starts."""
    from local.pipeline import LocalOptions

    extra: dict[str, Any] = {}
    if args.profiles is not None:
        if "profiles_file" not in {f.name for f in dataclasses.fields(LocalOptions)}:
            raise SessionError("--profiles is not supported by this version of the local stack")
        extra["profiles_file"] = Path(args.profiles)
    return LocalOptions(gateway_url=args.gateway_url, api_key=args.api_key, log_level=args.log_level, **extra)


def run_up(args: argparse.Namespace) -> int:
    problems = [checks.check_gateway_url(args.gateway_url)]
    if args.profiles is not None and not Path(args.profiles).is_file():
        problems.append(f"--profiles {args.profiles} is not a file")
    for problem in filter(None, problems):
        _error(problem)
    if any(problems):
        return 2
    try:
        options = _local_options(args)
    except SessionError as exc:
        _error(str(exc))
        return 2
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    from local.pipeline import LocalPipeline

    pipeline = LocalPipeline(options)
    with stop_signals_raise():
        try:
            try:  # not `with`: a signal during start() must stop what start() had started
                pipeline.start()
                gateway = args.gateway_url or f"built-in emulator at {pipeline.emulator.base_url}"  # type: ignore[union-attr]
                session = session_of(pipeline, gateway)
                publish_stack_outputs(pipeline.resources.client("cloudformation"), session)
                write_state(session, args.state)
                _print_ready(session, args.state)
                try:
                    threading.Event().wait()  # until a stop signal raises Interrupted here
                except Interrupted as stop:
                    print(_stopped_line(stop, pipeline, session), file=sys.stderr)
                    return stop.exit_code
            finally:
                remove_state(args.state, os.getpid())
                pipeline.stop()
        except Interrupted as stop:  # during start-up
            print(
                f"interrupted by {stop.name} while starting the local stack; everything it started is stopped",
                file=sys.stderr,
            )
            return stop.exit_code
    return 0


def _print_ready(session: StackSession, state: Path) -> None:
    for line in session.describe():
        print(line)
    print(f"state file   {state}")
    print(READY_LINE)
    print(session.export_line(), flush=True)


def _stopped_line(stop: Interrupted, pipeline: Any, session: StackSession) -> str:
    """What was in the stack when it stopped: it lives in memory, so it is gone now."""
    try:
        cutouts = len(pipeline.list_keys(session.output_prefix))
        reports = len(pipeline.list_keys(session.failure_prefix))
        held = f"it held {cutouts} cutouts and {reports} failure reports, "
    except Exception:  # noqa: BLE001 - the count is a courtesy; stopping must not fail on it
        held = ""
    return (
        f"stopped the local stack on {stop.name}: {held}gone with it (moto keeps everything in memory); "
        "copy results out first with `aws s3 cp --recursive` if you need them"
    )


def run_upload(args: argparse.Namespace) -> int:
    with stop_signals_raise():
        try:
            return _upload(args)
        except Interrupted as stop:
            print(f"interrupted by {stop.name} while uploading; what was uploaded stays in the stack", file=sys.stderr)
            return stop.exit_code


def _upload(args: argparse.Namespace) -> int:
    problem = checks.check_input(args.directory)
    if problem is None and args.wait is not None:
        problem = checks.check_timeout(args.wait)
    if problem:
        _error(problem.replace("--input ", "").replace("--timeout", "--wait"))
        return 2
    try:
        session = read_state(args.state)
    except SessionError as exc:
        _error(str(exc))
        return 2
    files = checks.input_files(args.directory)
    if not files:
        print(f"nothing to do: {args.directory} has no files", file=sys.stderr)
        return 0
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client("s3", **_client_arguments(session))
    try:
        keys = []
        for path in files:
            key = session.input_prefix + path.relative_to(args.directory).as_posix()
            s3.put_object(Bucket=session.bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
        print(f"uploaded {len(keys)} files to s3://{session.bucket}/{session.input_prefix}")
        if args.wait is None:
            return 0
        return _wait_for_results(s3, session, keys, args.wait)
    except (BotoCoreError, ClientError) as exc:
        _error(
            f"the local stack at {session.endpoint_url} did not answer ({type(exc).__name__}); is `up` still running?"
        )
        return 6


def _client_arguments(session: StackSession) -> dict[str, Any]:
    from local.aws import CLIENT_CONFIG
    from local.stack_session import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY

    return {
        "endpoint_url": session.endpoint_url,
        "region_name": session.region,
        "aws_access_key_id": DUMMY_ACCESS_KEY,
        "aws_secret_access_key": DUMMY_SECRET_KEY,
        "config": CLIENT_CONFIG,
    }


def _listed(s3: Any, bucket: str, prefix: str) -> set[str]:
    found: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update(obj["Key"] for obj in page.get("Contents", []))
    return found


def _wait_for_results(s3: Any, session: StackSession, keys: list[str], timeout: float) -> int:
    """Until each upload has a cutout or a failure report (any: a re-upload may see the previous one)."""
    from cutouts import keys as k

    expected = {
        key: (
            k.output_key_for(key, session.input_prefix, session.output_prefix),
            k.failure_key_for(key, session.input_prefix, session.failure_prefix),
        )
        for key in keys
    }
    deadline = time.monotonic() + timeout
    while True:
        present = _listed(s3, session.bucket, session.output_prefix) | _listed(
            s3, session.bucket, session.failure_prefix
        )
        pending = [key for key, (cutout, report) in expected.items() if cutout not in present and report not in present]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    for cutout, report in expected.values():
        if cutout in present:
            print(f"  cutout  s3://{session.bucket}/{cutout}")
        elif report in present:
            print(f"  failed  s3://{session.bucket}/{report}")
    for key in pending:
        print(f"  pending {key} (no result after {timeout:g} s)")
    done = len(keys) - len(pending)
    print(f"{done} of {len(keys)} uploads have a result")
    return 0 if not pending else 1
