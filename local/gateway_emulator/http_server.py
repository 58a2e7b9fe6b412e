"""The HTTP side: a threading server and the handler routing each request to its answer.

Only plumbing lives here (bodies, routes, headers); what a request is answered is in
:mod:`local.gateway_emulator.answers`.
"""

from __future__ import annotations

import json
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from local.gateway_emulator import answers
from local.gateway_emulator.jobs import timestamp
from local.gateway_emulator.reference import (
    MAX_BODY_BYTES,
    MEDIA_PATH,
    MEDIA_TYPE,
    MODEL_ROUTE,
    STATS_PATH,
    STATUS_PATH,
)

if TYPE_CHECKING:
    from local.gateway_emulator.emulator import GatewayEmulator

logger = logging.getLogger("local.gateway")


class GatewayServer(ThreadingHTTPServer):
    """The standard threading server, with a listen backlog for bursts (the default is 5)."""

    request_queue_size = 128
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: GatewayEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PixazoGatewayEmulator/1.0"
    timeout = 30  # idle keep-alive connections close, so threads do not linger

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add 40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def emulator(self) -> GatewayEmulator:
        return self.server.emulator  # type: ignore[attr-defined, no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
        head_only: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)
        path = urlsplit(self.path).path
        self.emulator.requests_log.append({"time": timestamp(), "method": self.command, "path": path, "status": status})

    def _send_json(self, status: int, document: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(document).encode("utf-8"), extra=extra)

    def _not_found(self) -> None:
        self._send_json(404, {"error": "Not Found", "message": "Resource not found"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = self._read_body()
        path = urlsplit(self.path).path
        if not MODEL_ROUTE.match(path):
            self._not_found()
            return
        if body is None:
            self.close_connection = True
            self._send_json(413, {"error": "Payload Too Large", "message": "Request body is too large."})
            return
        status, document, extra = answers.submit(self.emulator, path, self.headers, body)
        self._send_json(status, document, extra)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._read(head_only=False)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._read(head_only=True)

    def _read(self, head_only: bool) -> None:
        path = urlsplit(self.path).path
        emulator = self.emulator
        if path.startswith(STATUS_PATH):
            status, document = answers.poll(emulator, unquote(path[len(STATUS_PATH) :]), self.headers)
            self._send(status, json.dumps(document).encode("utf-8"), head_only=head_only)
        elif path.startswith(MEDIA_PATH) and path.endswith("/output.png"):
            png = emulator.ledger.media(unquote(path[len(MEDIA_PATH) : -len("/output.png")]))
            if png is None:
                self._not_found()
                return
            emulator.ledger.count("media_downloads")
            self._send(200, png, content_type=MEDIA_TYPE, head_only=head_only)
        elif path == STATS_PATH:
            self._send(200, json.dumps(emulator.stats()).encode("utf-8"), head_only=head_only)
        elif MODEL_ROUTE.match(path):
            self._send_json(405, {"error": "Method Not Allowed", "message": "Use POST."}, {"Allow": "POST"})
        else:
            self._not_found()
