"""What every benchmark section shares: a result row, medians, the Lambda-like environment."""

from __future__ import annotations

import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
for _path in (str(ROOT), str(FUNCTIONS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

MEMORY_MB = 256  # infra/functions.py MEMORY_MB: every function's configured memory


@dataclass
class Row:
    """One line of the table: a figure, its baseline from the same run, their ratio, the target."""

    section: str
    name: str
    figure: float
    unit: str
    baseline: float | None
    baseline_name: str
    ratio: float | None
    target: str
    met: bool | None
    n: int
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ratio(a: float, b: float | None) -> float | None:
    return round(a / b, 3) if b else None


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0] if elapsed else time.perf_counter() - start
    elapsed.append(time.perf_counter() - start)


def lambda_like_env(
    function_name: str, extra: dict[str, str] | None = None, functions_dir: Path | None = None
) -> dict[str, str]:
    """The environment Lambda gives a deployed function of the stack (tracing ACTIVE, as deployed).

    LAMBDA_TASK_ROOT makes Powertools believe it runs in Lambda, so the Tracer is enabled and
    loads the X-Ray SDK exactly as it does in the cloud. Every setting a function reads is set:
    the table's defaults, and placeholders for the stack's resources (import only).
    """
    from cutouts import constants as c
    from cutouts import settings_table as t

    functions = str(functions_dir or FUNCTIONS)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": functions,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": f"cutouts-{function_name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": functions,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_SERVICE_NAME": c.SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": c.METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **t.environment(
            {
                **t.DEFAULTS,
                "table_name": "cutouts-jobs",
                "gateway_key_secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cutouts/gateway-key",
                "signing_secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cutouts/callback-signing",
                "callback_base_url": "https://abc123.execute-api.us-east-1.amazonaws.com",
                "dlq_url": "https://sqs.us-east-1.amazonaws.com/123456789012/cutouts-dlq",
            }
        ),
    }
    env.update(extra or {})
    return {k: v for k, v in env.items() if v != ""}


def small_image(index: int, size: int = 96) -> bytes:
    """A small JPEG with a plain background and a subject: cheap to upload and to cut out."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (235, 235, 240))
    draw = ImageDraw.Draw(image)
    shade = (index * 37) % 200
    draw.ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(200, shade, 40))
    draw.text((2, 2), f"{index}", fill=(230, 230, 236))  # makes every index's bytes unique
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def silence_powertools_logs(level: str = "INFO") -> None:
    """Keep the deployed log level (INFO: log lines cost what they cost) but write them nowhere."""
    from cutouts.observability import logger

    logger.setLevel(level)
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logger.handlers if hasattr(logger, "handlers") else []:
        if isinstance(handler, logging.StreamHandler):
            # Not setStream: it flushes the old stream, which may be a capture buffer already closed.
            handler.acquire()
            try:
                handler.stream = sink
            finally:
                handler.release()
