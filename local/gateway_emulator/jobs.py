"""Job records and the emulator's accounting: each job's state, what was charged, the counters.

Everything here changes under one lock, so ``stats()`` is a consistent snapshot however many
HTTP, worker and call-back threads are running.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from local.gateway_emulator.reference import MEDIA_TYPE


@dataclass
class Job:
    request_id: str
    model_id: str
    image_url: str
    source: str
    webhook_url: str | None
    fate: str  # "complete", "failed", "error" or "stuck", drawn at submission
    callback_plan: str  # "send", "drop" or "duplicate"
    late_callback: bool
    created_at: str
    updated_at: str
    status: str = "QUEUED"
    error: str | None = None
    output: dict[str, Any] | None = None
    completed_at: str | None = None
    charged: bool = False
    content_sha256: str | None = None  # of the bytes fetched from image_url, once fetched
    media_sha256: str | None = None  # of the cutout served, once COMPLETED
    malformed_media_url: str | None = None  # served instead of the real one (fault), if COMPLETED
    callbacks_delivered: int = 0
    callback_bodies: list[dict[str, Any]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status": self.status,
            "model_id": self.model_id,
            "error": self.error,
            "output": self.output,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
        }


class Finished(NamedTuple):
    """A job just ended: its status document and how its call-back is to go out."""

    document: dict[str, Any]
    webhook_url: str | None
    callback_plan: str
    late_callback: bool


def timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def uuid7() -> uuid.UUID:
    """A time-ordered UUID version 7 (RFC 9562), as the reference's ids look."""
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (random_bits >> 62 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= random_bits & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def source_of(image_url: str) -> str:
    """The accounting key of an image URL: its decoded path, plus ``?versionId=`` if present.

    Presigned URLs of one object differ in their signature query parameters on every
    submission; the path and version identify what was actually processed.
    """
    parts = urlsplit(image_url)
    source = unquote(parts.path)
    versions = parse_qs(parts.query).get("versionId")
    if versions:
        source += f"?versionId={versions[0]}"
    return source


class JobLedger:
    """Every job, every cutout served, and the counters ``GET /_emulator/stats`` reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._media: dict[str, bytes] = {}
        self._counters: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._accepted_by_source: Counter[str] = Counter()
        self._charged_by_source: Counter[str] = Counter()
        self._charged_by_content: Counter[str] = Counter()

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def reject(self, status: int) -> None:
        with self._lock:
            self._rejected[str(status)] += 1

    def accept(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.request_id] = job
            self._counters["accepted"] += 1
            self._accepted_by_source[job.source] += 1

    def status_document(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(request_id)
            return job.document() if job else None

    def start_processing(self, request_id: str) -> tuple[str, str]:
        """Mark the job PROCESSING; its (fate, image_url)."""
        with self._lock:
            job = self._jobs[request_id]
            job.status = "PROCESSING"
            job.updated_at = timestamp()
            return job.fate, job.image_url

    def record_content(self, request_id: str, data: bytes) -> None:
        with self._lock:
            self._jobs[request_id].content_sha256 = hashlib.sha256(data).hexdigest()

    def store_media(self, request_id: str, png: bytes) -> None:
        with self._lock:
            self._media[request_id] = png
            self._jobs[request_id].media_sha256 = hashlib.sha256(png).hexdigest()

    def media(self, request_id: str) -> bytes | None:
        with self._lock:
            return self._media.get(request_id)

    def finish(self, request_id: str, status: str, error: str | None, media_url: str) -> Finished:
        """End the job in ``status``, charging COMPLETED and FAILED; ``media_url`` is where its
        cutout is served (a malformed one replaces it under that fault)."""
        now = timestamp()
        with self._lock:
            job = self._jobs[request_id]
            job.status = status
            job.error = error
            job.updated_at = job.completed_at = now
            if status == "COMPLETED":
                job.output = {"media_url": [job.malformed_media_url or media_url], "media_type": MEDIA_TYPE}
                if job.malformed_media_url:
                    self._counters["malformed_media_urls"] += 1
            if status in ("COMPLETED", "FAILED"):
                job.charged = True
                self._charged_by_source[job.source] += 1
                self._charged_by_content[job.content_sha256 or f"unfetched:{job.source}"] += 1
            self._counters[{"COMPLETED": "completed", "FAILED": "failed", "ERROR": "errors"}[status]] += 1
            return Finished(job.document(), job.webhook_url, job.callback_plan, job.late_callback)

    def callback_result(self, request_id: str, delivered: bool) -> None:
        with self._lock:
            self._counters["callbacks_sent" if delivered else "callbacks_failed"] += 1
            job = self._jobs.get(request_id)
            if job and delivered:
                job.callbacks_delivered += 1

    def stats(self) -> dict[str, Any]:
        """Counters for tests; the same document as ``GET /_emulator/stats``.

        ``requests_total`` counts submissions (POSTs to a model path), accepted or not;
        ``rejected`` maps an HTTP status (as a string) to how many submissions got it;
        ``charged_by_source`` counts COMPLETED and FAILED jobs per :func:`source_of` key;
        ``charged_by_content`` the same per SHA-256 of the bytes fetched (``unfetched:SOURCE``
        when the fetch failed).
        """
        with self._lock:
            by_status = Counter(job.status for job in self._jobs.values())
            return {
                "requests_total": self._counters["requests_total"],
                "accepted": self._counters["accepted"],
                "rejected": dict(sorted(self._rejected.items())),
                "accepted_by_source": dict(self._accepted_by_source),
                "charged_by_source": dict(self._charged_by_source),
                "charged_by_content": dict(self._charged_by_content),
                "malformed_media_urls": self._counters["malformed_media_urls"],
                "charged": sum(self._charged_by_source.values()),
                "completed": self._counters["completed"],
                "failed": self._counters["failed"],
                "errors": self._counters["errors"],
                "stuck": self._counters["stuck"],
                "by_status": dict(by_status),
                "status_polls": self._counters["status_polls"],
                "media_downloads": self._counters["media_downloads"],
                "callbacks_sent": self._counters["callbacks_sent"],
                "callbacks_failed": self._counters["callbacks_failed"],
                "callbacks_dropped": self._counters["callbacks_dropped"],
                "callbacks_duplicated": self._counters["callbacks_duplicated"],
                "callbacks_late": self._counters["callbacks_late"],
                "jobs": {
                    job.request_id: {
                        "source": job.source,
                        "status": job.status,
                        "charged": job.charged,
                        "content_sha256": job.content_sha256,
                        "media_sha256": job.media_sha256,
                        "malformed_media_url": job.malformed_media_url,
                        "webhook_url": job.webhook_url,
                        "callbacks_delivered": job.callbacks_delivered,
                    }
                    for job in self._jobs.values()
                },
            }
