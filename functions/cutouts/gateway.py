"""The gateway seam: what the use cases need from a background-removal provider, and nothing more.

A provider is one module with a class that satisfies ``Gateway`` (today ``pixazo``). Whether an
error is transient, permanent or in doubt is a property of the exception type the provider
raises, decided there by its own status codes and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple, Protocol


class GatewayStatus(StrEnum):
    """A request's state at the gateway (ERROR is a system error the gateway does not charge)."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ERROR = "ERROR"


QUEUED, PROCESSING, COMPLETED = GatewayStatus.QUEUED, GatewayStatus.PROCESSING, GatewayStatus.COMPLETED
FAILED, ERROR = GatewayStatus.FAILED, GatewayStatus.ERROR
KNOWN_STATUSES = frozenset(GatewayStatus)


class GatewayError(Exception):
    """Base of every gateway failure; ``transient`` says whether trying again can help."""

    transient = False

    def __init__(self, message: str, http_status: int | None = None, gateway_error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.gateway_error = gateway_error


class GatewayTransientError(GatewayError):
    """The gateway did not take the request (5xx, 429, connection refused); retrying is safe.

    ``reason`` is the failure the job ends with if every delivery meets this (its report's advice).
    """

    transient = True

    def __init__(
        self,
        message: str,
        http_status: int | None = None,
        retry_after: float | None = None,
        gateway_error: str | None = None,
        reason: str = "gateway-gave-up",
    ) -> None:
        super().__init__(message, http_status, gateway_error)
        self.retry_after = retry_after
        self.reason = reason


class GatewayPermanentError(GatewayError):
    """A 4xx the same request will always get: end the job and tell the user what to do."""

    def __init__(
        self, message: str, http_status: int | None, reason: str, what_to_do: str, gateway_error: str | None = None
    ) -> None:
        super().__init__(message, http_status, gateway_error)
        self.reason = reason
        self.what_to_do = what_to_do


class GatewayInDoubt(GatewayError):
    """The request was sent but no answer came back: the gateway may have accepted (and billed) it.

    Resubmitting at once could pay twice, so the caller parks the job instead (see submission.py).
    """

    transient = True


class Submission(NamedTuple):
    request_id: str
    status: str


class JobStatus(NamedTuple):
    request_id: str
    status: GatewayStatus
    error: str | None = None
    media_urls: tuple[str, ...] = ()
    created_at: str | None = None
    completed_at: str | None = None


class Gateway(Protocol):
    """A background-removal provider as the use cases see it."""

    def submit(self, image_url: str, webhook_url: str) -> Submission:
        """POST one image; the provider calls ``webhook_url`` back when it is done."""
        ...

    def status(self, request_id: str) -> JobStatus:
        """Ask what really happened to a request (a callback's body is never trusted)."""
        ...

    def until(self, deadline: float) -> Gateway:
        """A copy whose calls end by ``deadline`` (time.monotonic()), for one invocation's budget."""
        ...

    def parse_callback(self, doc: Any) -> JobStatus:
        """The status a callback body claims; ValueError if it is not the provider's shape."""
        ...
