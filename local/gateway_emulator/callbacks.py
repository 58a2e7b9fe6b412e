"""Delivering call-backs as the gateway does, and as its faults distort them (dropped, twice, late).

Each delivery runs on its own thread, so a slow or dead webhook never holds up a worker.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from typing import Any

import urllib3

from local.gateway_emulator.jobs import Finished, JobLedger

logger = logging.getLogger("local.gateway")

CALLBACK_ATTEMPTS = 3
CALLBACK_BACKOFF_SECONDS = (0.25, 0.5)
CALLBACK_TIMEOUT_SECONDS = 5.0
DUPLICATE_CALLBACK_GAP_SECONDS = 0.05


class CallbackSender:
    """POSTs terminal status documents to webhooks; ``log`` records every delivery's outcome."""

    def __init__(self, ledger: JobLedger, http: urllib3.PoolManager, stop: threading.Event) -> None:
        self._ledger = ledger
        self._http = http
        self._stop = stop
        self.log: deque[dict[str, Any]] = deque(maxlen=10_000)

    def send(self, request_id: str, finished: Finished, late_delay: float) -> None:
        """Send the call-back of a job that just ended, as its call-back plan says."""
        if finished.webhook_url is None:
            return
        if finished.callback_plan == "drop":
            self._ledger.count("callbacks_dropped")
            logger.info("%s call-back dropped (fault)", request_id)
            return
        copies = 2 if finished.callback_plan == "duplicate" else 1
        if copies == 2:
            self._ledger.count("callbacks_duplicated")
        if finished.late_callback:
            self._ledger.count("callbacks_late")
        threading.Thread(
            target=self._deliver,
            args=(
                request_id,
                finished.webhook_url,
                finished.document,
                copies,
                late_delay if finished.late_callback else 0.0,
            ),
            name=f"gateway-callback-{request_id[-8:]}",
            daemon=True,
        ).start()

    def _deliver(self, request_id: str, url: str, document: dict[str, Any], copies: int, delay: float) -> None:
        if self._stop.wait(delay):
            return
        body = json.dumps(document).encode("utf-8")
        for copy in range(copies):
            if copy and self._stop.wait(DUPLICATE_CALLBACK_GAP_SECONDS):
                return
            self._post(request_id, url, body)

    def _post(self, request_id: str, url: str, body: bytes) -> None:
        status: int | None = None
        problem = ""
        attempts = 0
        for attempts in range(1, CALLBACK_ATTEMPTS + 1):
            try:
                response = self._http.request(
                    "POST",
                    url,
                    body=body,
                    headers={"Content-Type": "application/json", "User-Agent": "pixazo-gateway-emulator"},
                    timeout=urllib3.Timeout(total=CALLBACK_TIMEOUT_SECONDS),
                    retries=False,
                    redirect=False,
                )
                status = response.status
                problem = "" if status < 500 else f"HTTP {status}"
            except urllib3.exceptions.HTTPError as exc:
                status, problem = None, exc.__class__.__name__
            if not problem or attempts == CALLBACK_ATTEMPTS:
                break
            if self._stop.wait(CALLBACK_BACKOFF_SECONDS[min(attempts, len(CALLBACK_BACKOFF_SECONDS)) - 1]):
                return
        delivered = status is not None and 200 <= status < 300
        self._ledger.callback_result(request_id, delivered)
        self.log.append(
            {
                "request_id": request_id,
                "url": url,
                "status": status,
                "attempts": attempts,
                "error": problem or None,
            }
        )
        logger.info("%s call-back -> %s (%s attempt(s))", request_id, status or problem, attempts)
