"""Running ``python -m local`` and ``python -m cutouts_cli`` as subprocesses, and watching their processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "images"
ONE_IMAGE = SAMPLES / "red apple.jpg"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without AWS settings (other tests put fake ones in os.environ), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "CUTOUTS_STACK"}
    return {**env, **extra}


def local(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local", *argv],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local", *argv],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_short_and_clean(stderr: str, *words: str, lines: int = 1) -> None:
    assert "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) <= lines, stderr
    assert all(word in stderr for word in words), stderr


def images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        shutil.copy(ONE_IMAGE, folder / f"apple-{index}.jpg")
    return folder


def children_of(pid: int) -> list[int]:
    """Direct child processes, from /proc (Linux), as psutil would list them."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left


def port_is_free(port: int) -> bool:
    """Nothing listens there and a new server could (SO_REUSEADDR, as servers do: TIME_WAIT is no holder)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def read_until(stream, marker: str, timeout: float = 60.0) -> list[str]:  # type: ignore[no-untyped-def]
    """Lines of ``stream`` up to and including the first one containing ``marker``."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"no line with {marker!r} within {timeout} s: {lines}")


def moto_port(line: str) -> int:
    """The harness port from 'Local stack up: AWS stand-in http://127.0.0.1:PORT, ...' or 'endpoint  http://...'."""
    url = next(word for word in line.replace(",", " ").split() if word.startswith("http://127.0.0.1:"))
    return int(url.rsplit(":", 1)[1])
