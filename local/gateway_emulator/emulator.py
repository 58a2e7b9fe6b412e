"""The emulator itself: wires the parts together and runs them (start, stop, where it listens)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import urllib3

from local.gateway_emulator.callbacks import CallbackSender
from local.gateway_emulator.faults import FaultConfig, FaultDraws
from local.gateway_emulator.http_server import GatewayServer
from local.gateway_emulator.jobs import JobLedger
from local.gateway_emulator.reference import DEFAULT_API_KEY, DEFAULT_MODEL_PATH, MEDIA_PATH, MODEL_ROUTE
from local.gateway_emulator.worker import WorkerPool

logger = logging.getLogger("local.gateway")


class GatewayEmulator:
    """The gateway on ``host:port`` (port 0 picks a free one), with ``workers`` job threads."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        faults: FaultConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 4,
        *,
        model_path: str = DEFAULT_MODEL_PATH,
    ) -> None:
        match = MODEL_ROUTE.match(model_path)
        if not match:
            raise ValueError(f"model_path must look like /MODEL/v1/OPERATION, got {model_path!r}")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.api_key = api_key
        self.draws = FaultDraws(faults or FaultConfig())
        self.host = host
        self.port = port
        self.workers = workers
        self.model_path = model_path
        self.model_id = match.group(1)
        self.requests_log: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.ledger = JobLedger()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: GatewayServer | None = None
        self._http = urllib3.PoolManager(num_pools=16, maxsize=8)
        self.callbacks = CallbackSender(self.ledger, self._http, self._stop)
        self.callbacks_log = self.callbacks.log
        self.pool = WorkerPool(self.ledger, self.draws, self.callbacks, self._http, self._stop, self._media_url)

    @property
    def faults(self) -> FaultConfig:
        """The faults in force; every part reads this one object, so changing a field takes effect."""
        return self.draws.config

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self.draws.config = config

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> GatewayEmulator:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._stop.clear()
        server = GatewayServer((self.host, self.port), self)
        self._server = server
        self.port = server.server_address[1]
        serve = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="gateway-http", daemon=True
        )
        serve.start()
        self._threads = [serve, *self.pool.start(self.workers)]
        logger.info("gateway emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        self.pool.release(self.workers)
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []
        self._http.clear()

    def __enter__(self) -> GatewayEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def submit_url(self) -> str:
        return self.base_url + self.model_path

    def _media_url(self, request_id: str) -> str:
        return f"{self.base_url}{MEDIA_PATH}{request_id}/output.png"

    # ----------------------------------------------------------------- accounting

    def stats(self) -> dict[str, Any]:
        """Counters for tests; the same document as ``GET /_emulator/stats`` (see :meth:`JobLedger.stats`)."""
        return self.ledger.stats()

    def status_document(self, request_id: str) -> dict[str, Any] | None:
        return self.ledger.status_document(request_id)
