"""The processing pool: worker threads that take accepted jobs from QUEUED to a terminal state.

A job waits ``queued_delay``, turns PROCESSING, fetches ``image_url`` (the real gateway fetches
the presigned URL, so we do too), cuts the image out with
:func:`local.background_removal.remove_background`, waits out ``processing_delay`` and ends
COMPLETED, FAILED or ERROR as its drawn fate says (or stays PROCESSING when stuck).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import urllib3

from local.background_removal import remove_background
from local.gateway_emulator.callbacks import CallbackSender
from local.gateway_emulator.faults import FaultDraws
from local.gateway_emulator.jobs import JobLedger

logger = logging.getLogger("local.gateway")

FETCH_TIMEOUT_SECONDS = 10.0
MAX_IMAGE_BYTES = 50 * 1024 * 1024


class WorkerPool:
    """``start(n)`` runs n workers on the queue ``enqueue`` feeds; ``media_url_of`` names where a
    COMPLETED job's cutout is served."""

    def __init__(
        self,
        ledger: JobLedger,
        draws: FaultDraws,
        callbacks: CallbackSender,
        http: urllib3.PoolManager,
        stop: threading.Event,
        media_url_of: Callable[[str], str],
    ) -> None:
        self._ledger = ledger
        self._draws = draws
        self._callbacks = callbacks
        self._http = http
        self._stop = stop
        self._media_url_of = media_url_of
        self._queue: queue.Queue[str | None] = queue.Queue()

    def enqueue(self, request_id: str) -> None:
        self._queue.put(request_id)

    def start(self, workers: int) -> list[threading.Thread]:
        threads = []
        for index in range(workers):
            worker = threading.Thread(target=self._work, name=f"gateway-worker-{index}", daemon=True)
            worker.start()
            threads.append(worker)
        return threads

    def release(self, workers: int) -> None:
        """Wake ``workers`` idle workers so they see the stop and end."""
        for _ in range(workers):
            self._queue.put(None)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                request_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if request_id is None:
                return
            try:
                self._process(request_id)
            except Exception:  # a bug here must not kill the worker
                logger.exception("processing %s crashed", request_id)
                self._finish(request_id, "ERROR", error="Internal error in the gateway emulator.")

    def _process(self, request_id: str) -> None:
        if self._stop.wait(self._draws.config.queued_delay):
            return
        fate, image_url = self._ledger.start_processing(request_id)
        started = time.monotonic()
        if fate == "stuck":
            self._ledger.count("stuck")
            logger.info("%s stays PROCESSING (stuck)", request_id)
            return
        png: bytes | None = None
        error: str | None = None
        if fate in ("complete", "failed"):
            data, error = self._fetch(image_url)
            if data is not None:
                self._ledger.record_content(request_id, data)
                if fate == "complete":
                    png, error = self._cut_out(data)
        if self._stop.wait(max(0.0, self._draws.config.processing_delay - (time.monotonic() - started))):
            return
        if fate == "error":
            self._finish(request_id, "ERROR", error="Internal system error while processing the request.")
        elif fate == "failed":
            self._finish(request_id, "FAILED", error="Model inference failed for this input.")
        elif png is None:
            self._finish(request_id, "FAILED", error=error)
        else:
            self._ledger.store_media(request_id, png)
            self._finish(request_id, "COMPLETED")

    def _fetch(self, image_url: str) -> tuple[bytes | None, str | None]:
        """Download the image: (bytes, None) or (None, reason for FAILED)."""
        try:
            response = self._http.request(
                "GET",
                image_url,
                timeout=urllib3.Timeout(total=FETCH_TIMEOUT_SECONDS),
                retries=urllib3.Retry(total=2, redirect=3, raise_on_status=False),
                preload_content=False,
            )
            try:
                data = response.read(MAX_IMAGE_BYTES + 1)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            return None, f"Failed to download image_url: {reason.__class__.__name__}"
        if response.status != 200:
            return None, f"Failed to download image_url: HTTP {response.status}"
        if len(data) > MAX_IMAGE_BYTES:
            return None, "Input image is too large."
        return data, None

    def _cut_out(self, data: bytes) -> tuple[bytes | None, str | None]:
        """Cut out the image: (PNG, None) or (None, reason for FAILED)."""
        try:
            return remove_background(data), None
        except ValueError as exc:
            return None, f"Input is not a valid image: {exc}"

    def _finish(self, request_id: str, status: str, error: str | None = None) -> None:
        finished = self._ledger.finish(request_id, status, error, self._media_url_of(request_id))
        logger.info("%s %s%s", request_id, status, f": {error}" if error else "")
        self._callbacks.send(request_id, finished, self._draws.config.late_callback_delay)
