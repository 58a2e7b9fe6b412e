"""Which submissions and jobs misbehave: the fault settings and the seeded draws that apply them.

All draws come from one RNG seeded once, in a fixed order per submission and per job, so a seed
reproduces the same faults run after run.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import NamedTuple

# Media URLs a COMPLETED answer may carry under the malformed-media-url fault: unparseable, a port
# that is no number or out of range, a scheme that is not https, hosts off the allow-list
# (the reference's own CDN, cloud metadata), and no host at all. ``{rid}`` is the request id,
# ``{netloc}`` the emulator's host:port.
MALFORMED_MEDIA_URLS = (
    "https://[pub-{rid}.r2.dev/output.png",
    "http://{netloc}x/media/{rid}/output.png",
    "https://pub-{rid}.r2.dev:99999/output.png",
    "ftp://{netloc}/media/{rid}/output.png",
    "https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/{rid}/output.png",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "/media/{rid}/output.png",
)

SERVER_ERRORS = {
    500: ("Internal Server Error", "An unexpected error occurred. Please try again later."),
    502: ("Bad Gateway", "The upstream model service returned an invalid response."),
    503: ("Service Unavailable", "The service is temporarily unavailable. Please try again later."),
}


@dataclass
class FaultConfig:
    """How the emulator misbehaves. Rates are probabilities in [0, 1], drawn per request.

    ``rate_stuck + rate_error + rate_failed`` and ``rate_drop_callback +
    rate_duplicate_callback`` must each be at most 1 (they are exclusive outcomes).
    ``queued_delay`` (an addition to the brief's fields) keeps a job QUEUED that long before a
    worker takes it, so the QUEUED state can be observed.
    """

    processing_delay: float = 0.2
    rate_429: float = 0
    retry_after_seconds: int = 1
    rate_5xx: float = 0
    rate_failed: float = 0
    rate_error: float = 0
    rate_stuck: float = 0
    rate_drop_callback: float = 0
    rate_duplicate_callback: float = 0
    rate_late_callback: float = 0
    late_callback_delay: float = 1.0
    insufficient_balance: bool = False
    seed: int | None = None
    queued_delay: float = 0.0
    rate_malformed_media_url: float = 0  # share of COMPLETED jobs whose media_url is malformed

    def __post_init__(self) -> None:
        for name in (
            "rate_429",
            "rate_5xx",
            "rate_failed",
            "rate_error",
            "rate_stuck",
            "rate_drop_callback",
            "rate_duplicate_callback",
            "rate_late_callback",
            "rate_malformed_media_url",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in ("processing_delay", "late_callback_delay", "queued_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must not be negative")
        if self.rate_stuck + self.rate_error + self.rate_failed > 1:
            raise ValueError("rate_stuck + rate_error + rate_failed must be at most 1")
        if self.rate_drop_callback + self.rate_duplicate_callback > 1:
            raise ValueError("rate_drop_callback + rate_duplicate_callback must be at most 1")


class SubmissionFaults(NamedTuple):
    """What a submission that passed the key and model checks is answered instead of 202, if anything."""

    throttled: bool
    server_error: int | None  # 500, 502 or 503


class JobFaults(NamedTuple):
    """A job's fate and its call-back's, decided when it is accepted."""

    fate: str  # "complete", "failed", "error" or "stuck"
    callback_plan: str  # "send", "drop" or "duplicate"
    late_callback: bool
    malformed_media_url: str | None  # a MALFORMED_MEDIA_URLS template, if the fault applies


class FaultDraws:
    """The seeded draws; ``config`` is the one :class:`FaultConfig` every part reads."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self._lock = threading.Lock()

    def submission(self) -> SubmissionFaults:
        config = self.config
        with self._lock:
            throttled = self._random.random() < config.rate_429
            server_error = self._random.random() < config.rate_5xx
            error_code = self._random.choice(sorted(SERVER_ERRORS))
        return SubmissionFaults(throttled, error_code if server_error else None)

    def job(self) -> JobFaults:
        config = self.config
        with self._lock:
            fate_draw = self._random.random()
            callback_draw = self._random.random()
            late_draw = self._random.random()
            # drawn only when asked for, so other faults keep their sequence for a given seed
            malformed = (
                self._random.choice(MALFORMED_MEDIA_URLS)
                if config.rate_malformed_media_url and self._random.random() < config.rate_malformed_media_url
                else None
            )
        if fate_draw < config.rate_stuck:
            fate = "stuck"
        elif fate_draw < config.rate_stuck + config.rate_error:
            fate = "error"
        elif fate_draw < config.rate_stuck + config.rate_error + config.rate_failed:
            fate = "failed"
        else:
            fate = "complete"
        if callback_draw < config.rate_drop_callback:
            plan = "drop"
        elif callback_draw < config.rate_drop_callback + config.rate_duplicate_callback:
            plan = "duplicate"
        else:
            plan = "send"
        return JobFaults(fate, plan, late_draw < config.rate_late_callback, malformed)
