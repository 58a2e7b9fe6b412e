"""Row 3: peak RSS growth of the webhook's download path while it writes a 5 MB and a 100 MB cutout.

The moto server and a media server (a valid PNG signature, then filler, streamed with a
Content-Length) run in this process; the measured code runs in a fresh child process so that
neither server's memory (moto keeps objects in RAM) is counted. The child creates the S3 client
as runtime.py does, makes one warm-up transfer, resets the peak (``/proc/self/clear_refs``,
or takes the peak so far when that is refused), calls ``cutouts.safe_download.fetch_media_to_s3``
and reports the growth of VmHWM.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import FUNCTIONS, ROOT, Row, median
from cutouts.safe_download import PART_SIZE

MB = 1024 * 1024
SIZES_MB = (5, 100)
TARGET_MB = 64
TARGET_SPREAD = 1.2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class MediaServer:
    """Serves /<n>.png as n bytes: the PNG signature, then zeros, in 1 MiB writes."""

    def __init__(self) -> None:
        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                size = int(self.path.strip("/").split(".")[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                block = bytes(MB)
                self.wfile.write(PNG_SIGNATURE)
                left = size - len(PNG_SIGNATURE)
                while left > 0:
                    chunk = block[: min(MB, left)]
                    self.wfile.write(chunk)
                    left -= len(chunk)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def netloc(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self) -> MediaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


_CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
endpoint, netloc, bucket, size = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

import boto3
from botocore.config import Config
from cutouts.safe_download import MediaPolicy, fetch_media_to_s3

retry = Config(retries={"mode": "standard", "max_attempts": 3})
s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                  config=retry.merge(Config(signature_version="s3v4")))
policy = MediaPolicy(frozenset({netloc}), 200 * 1024 * 1024, 30.0, True)
fetch_media_to_s3(f"http://{netloc}/{64 * 1024}.png", policy, s3, bucket, "bench/warm.png", {"job-id": "warm"})
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base, how = status("VmRSS"), "clear_refs"
except OSError:
    base, how = status("VmHWM"), "peak-so-far"
written = fetch_media_to_s3(f"http://{netloc}/{size}.png", policy, s3, bucket, "bench/big.png", {"job-id": "big"})
print(json.dumps({"growth": status("VmHWM") - base, "base": base, "written": written, "how": how}))
"""


def measure(endpoint: str, netloc: str, bucket: str, size: int) -> dict[str, Any]:
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(FUNCTIONS), endpoint, netloc, bucket, str(size)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run(n: int = 3) -> list[Row]:
    import boto3

    from local.aws import LocalAws

    aws = LocalAws()
    endpoint = aws.start()
    try:
        s3 = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="bench-memory")
        results: dict[int, list[dict[str, Any]]] = {size: [] for size in SIZES_MB}
        with MediaServer() as media:
            for _ in range(n):
                for size in SIZES_MB:
                    results[size].append(measure(endpoint, media.netloc, "bench-memory", size * MB))
                    s3.delete_object(Bucket="bench-memory", Key="bench/big.png")
    finally:
        aws.stop()
    growth = {size: median([r["growth"] for r in results[size]]) / MB for size in SIZES_MB}
    small, big = growth[SIZES_MB[0]], growth[SIZES_MB[1]]
    spread = round(big / small, 3) if small else None
    how = results[SIZES_MB[0]][0]["how"]
    rows = []
    for size in SIZES_MB:
        rows.append(
            Row(
                section="3 memory",
                name=f"peak RSS growth, webhook download of a {size} MB cutout",
                figure=round(growth[size], 1),
                unit="MB",
                baseline=round(small, 1) if size != SIZES_MB[0] else None,
                baseline_name=f"the {SIZES_MB[0]} MB cutout" if size != SIZES_MB[0] else "",
                ratio=spread if size != SIZES_MB[0] else None,
                target=(
                    f"< {TARGET_MB} MB" + (f"; <= {TARGET_SPREAD}x the {SIZES_MB[0]} MB" if size != SIZES_MB[0] else "")
                ),
                met=growth[size] < TARGET_MB and (size == SIZES_MB[0] or (spread or 99) <= TARGET_SPREAD),
                n=n,
                note=(
                    f"VmHWM delta in a fresh process ({how}); "
                    + (
                        "one part or less: read, then one PutObject"
                        if size * MB <= PART_SIZE
                        else "streamed in 8 MiB multipart parts"
                    )
                    + " to the moto server"
                ),
                details={
                    "growth_mb": [round(r["growth"] / MB, 1) for r in results[size]],
                    "base_rss_mb": round(results[size][0]["base"] / MB, 1),
                },
            )
        )
    return rows
