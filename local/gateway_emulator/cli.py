"""The emulator's command line, ``python -m local gateway``: its options and the serve-until-Ctrl-C loop."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time

from local.gateway_emulator.emulator import GatewayEmulator
from local.gateway_emulator.faults import FaultConfig
from local.gateway_emulator.reference import (
    DEFAULT_API_KEY,
    DEFAULT_MODEL_PATH,
    DEFAULT_PORT,
    KEY_HEADER,
    STATS_PATH,
    STATUS_PATH,
)


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"seconds must not be negative, got {text}")
    return value


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m local gateway``."""
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--api-key",
        default=DEFAULT_API_KEY,
        help=f"the Ocp-Apim-Subscription-Key clients must send (default {DEFAULT_API_KEY!r})",
    )
    parser.add_argument("--model-path", default=DEFAULT_MODEL_PATH, help=f"submit path (default {DEFAULT_MODEL_PATH})")
    parser.add_argument("--workers", type=int, default=4, help="jobs processed in parallel (default 4)")
    parser.add_argument("--delay", type=_seconds, default=1.0, help="seconds a job spends PROCESSING (default 1.0)")
    parser.add_argument(
        "--queued-delay", type=_seconds, default=0.0, help="seconds a job stays QUEUED first (default 0)"
    )
    parser.add_argument("--rate-429", type=_rate, default=0.0, help="share of submissions answered 429 (0-1)")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds sent with a 429 (default 1)")
    parser.add_argument(
        "--rate-5xx", type=_rate, default=0.0, help="share of submissions answered 500, 502 or 503 (0-1)"
    )
    parser.add_argument("--rate-failed", type=_rate, default=0.0, help="share of jobs ending FAILED, charged (0-1)")
    parser.add_argument("--rate-error", type=_rate, default=0.0, help="share of jobs ending ERROR, not charged (0-1)")
    parser.add_argument(
        "--rate-stuck", type=_rate, default=0.0, help="share of jobs that stay PROCESSING forever (0-1)"
    )
    parser.add_argument(
        "--drop-callbacks",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of call-backs never sent (0-1)",
    )
    parser.add_argument(
        "--duplicate-callbacks",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of call-backs sent twice (0-1)",
    )
    parser.add_argument(
        "--late-callbacks",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of call-backs sent only after --late-callback-delay (0-1)",
    )
    parser.add_argument(
        "--late-callback-delay",
        type=_seconds,
        default=5.0,
        help="extra seconds before a late call-back (default 5)",
    )
    parser.add_argument(
        "--rate-malformed-media-url",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of COMPLETED jobs whose media_url is malformed or off the allow-list (0-1)",
    )
    parser.add_argument(
        "--insufficient-balance", action="store_true", help="answer every submission 402 Insufficient Balance"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for reproducible faults")


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    return FaultConfig(
        processing_delay=args.delay,
        queued_delay=args.queued_delay,
        rate_429=args.rate_429,
        retry_after_seconds=args.retry_after,
        rate_5xx=args.rate_5xx,
        rate_failed=args.rate_failed,
        rate_error=args.rate_error,
        rate_stuck=args.rate_stuck,
        rate_drop_callback=args.drop_callbacks,
        rate_duplicate_callback=args.duplicate_callbacks,
        rate_late_callback=args.late_callbacks,
        late_callback_delay=args.late_callback_delay,
        insufficient_balance=args.insufficient_balance,
        seed=args.seed,
        rate_malformed_media_url=args.rate_malformed_media_url,
    )


def run_gateway(args: argparse.Namespace) -> int:
    """Serve the emulator until Ctrl-C; print where it listens. Returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # fetch retries are reported per job
    try:
        faults = faults_from_args(args)
        emulator = GatewayEmulator(
            args.api_key,
            faults,
            host=args.host,
            port=args.port,
            workers=args.workers,
            model_path=args.model_path,
        )
        emulator.start()
    except (ValueError, OSError) as exc:
        print(f"gateway emulator: {exc}")
        return 2
    print(f"Gateway emulator (Bria RMBG 2.0 on Pixazo) at {emulator.base_url}", flush=True)
    print(f"  model path:  {emulator.model_path}")
    print(f"  submit:      POST {emulator.submit_url}  ({KEY_HEADER}: {args.api_key})")
    print(f"  status:      GET  {emulator.base_url}{STATUS_PATH}{{request_id}}")
    print(f"  stats:       GET  {emulator.base_url}{STATS_PATH}")
    print("Ctrl-C to stop.", flush=True)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)  # stop as cleanly on `kill` as on Ctrl-C
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        stats = emulator.stats()
        print(
            f"\nstopped: {stats['accepted']} accepted, {stats['completed']} completed, "
            f"{stats['failed']} failed, {stats['errors']} errors, {stats['callbacks_sent']} call-backs sent"
        )
    return 0
