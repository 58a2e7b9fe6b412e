"""The collaborators the use cases need, passed in explicitly so tests can hand in their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cutouts.callback_token import CallbackSigner
from cutouts.gateway import Gateway
from cutouts.job_store import JobStore
from cutouts.safe_download import MediaPolicy, Resolver, system_resolver
from cutouts.settings import Settings


class MetricsSink(Protocol):
    """What the use cases record; observability.PowertoolsRecorder is the Lambda implementation."""

    def count(self, name: str, value: float = 1) -> None: ...

    def seconds(self, name: str, value: float) -> None: ...

    def failure(self, reason: str) -> None: ...


class NullMetrics:
    def count(self, name: str, value: float = 1) -> None:
        return None

    def seconds(self, name: str, value: float) -> None:
        return None

    def failure(self, reason: str) -> None:
        return None


@dataclass
class Services:
    settings: Settings
    s3: Any
    store: JobStore
    gateway: Gateway
    signer: CallbackSigner
    metrics: MetricsSink
    media_policy: MediaPolicy
    resolve: Resolver = system_resolver
    sqs: Any = None
    events: Any = None  # job_events.EventAnnouncer: the reconciler sends the events still pending
    profiles: Any = None  # cutouts.profiles.Profiles; None: today's one PNG cutout, nothing rendered
