"""The local stand-in for API Gateway: a caller that hangs up is not an error of the stack."""

from __future__ import annotations

import socket
import threading
from typing import Any

from local.lambda_runtime import HttpApi


def test_a_caller_that_hangs_up_before_its_answer_leaves_no_traceback_and_the_function_still_runs(capfd):
    # Given the callback API, with a function slower than its caller's patience
    release, finished = threading.Event(), threading.Event()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        release.wait(5)
        finished.set()
        return {"statusCode": 200, "body": "x" * 1_000_000}

    before = set(threading.enumerate())
    api = HttpApi(slow)
    api.start()
    try:
        host, port = api.base_url.removeprefix("http://").split(":")
        # When a caller posts, then hangs up (a reset, not a polite close) before the answer
        caller = socket.create_connection((host, int(port)))
        caller.sendall(b"POST /callback/job HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        caller.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        caller.close()
        release.set()
        # Then the function ran to its end, as behind API Gateway
        assert finished.wait(5)
    finally:
        api.stop()
        for thread in set(threading.enumerate()) - before:  # the request's thread, done writing its answer
            thread.join(5)
    # And the server printed nothing about the broken connection
    assert "Traceback" not in capfd.readouterr().err
