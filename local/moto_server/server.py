"""Starting moto's server with every repair applied, on the main port and the functions' port."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import local.moto_server
from local.moto_server.cost_repairs import make_backend_lookup_cached, make_sqs_receive_linear
from local.moto_server.faults import AwsFaultConfig, AwsFaults
from local.moto_server.fidelity import make_dynamodb_writes_atomic, make_s3_events_faithful
from local.moto_server.s3_limits import make_s3_limits_enforced


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.moto_server", description=local.moto_server.__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="the main port (no faults)")
    parser.add_argument("--functions-port", type=int, help="a second port, for the functions: faults go there")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of SDK calls given a fault (0-1)")
    parser.add_argument("--fault-reach", type=float, default=0.5, help="share of faulted calls failing every attempt")
    parser.add_argument("--fault-seed", type=int, default=None, help="random seed, for reproducible faults")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone (no orphan holds the port)")
    return parser.parse_args(argv)


def exit_when_orphaned(parent_pid: int, every: float = 0.5) -> threading.Thread:
    """Exit as soon as ``parent_pid`` is no longer our parent: it died without stopping us.

    A parent killed by SIGKILL cannot clean up, and the kernel then hands us to another process
    (init or a subreaper): our parent id changes, which is what this watches.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every)
        os._exit(0)

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    args = _arguments(argv if argv is not None else sys.argv[1:])
    faults = AwsFaults(AwsFaultConfig(args.fault_rate, args.fault_reach, args.fault_seed))
    make_dynamodb_writes_atomic()
    make_s3_events_faithful()
    make_s3_limits_enforced()
    make_sqs_receive_linear()
    make_backend_lookup_cached()
    if os.environ.get("CUTOUTS_MOTO_ACCESS_LOG") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)

    def serve(port: int, inject: bool) -> Any:
        return make_server(
            args.host, port, faults.wrap(app, inject=inject), threaded=True, request_handler=MotoRequestHandler
        )

    main_server = serve(args.port, inject=False)
    if args.functions_port is not None:
        functions_server = serve(args.functions_port, inject=True)
        threading.Thread(target=functions_server.serve_forever, name="functions-port", daemon=True).start()
    if args.parent_pid is not None:
        exit_when_orphaned(args.parent_pid)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda signum, frame: sys.exit(0))
    main_server.serve_forever()
