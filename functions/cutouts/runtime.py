"""Wiring for the deployed functions: settings at cold start, AWS clients and secrets on first use.

Clients are created lazily and kept for the life of the execution environment; secrets are read
through Powertools parameters with a cache, so warm invocations make no Secrets Manager call and
a rotated value is picked up within ``secret_max_age_seconds``.
"""

from __future__ import annotations

import functools
import os
from typing import Any, cast

from cutouts.settings import Settings, load_settings


@functools.cache
def settings() -> Settings:
    return load_settings(os.environ)


@functools.cache
def _clients() -> dict[str, Any]:
    import boto3
    import urllib3
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # botocore waits 60 s for a reply by default: longer than the functions live. A stalled call
    # should fail fast and be retried (standard mode) while there is time left to do so.
    retry = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
    s3 = boto3.client("s3", region_name=region, config=retry.merge(Config(signature_version="s3v4")))
    return {
        "s3": s3,
        "dynamodb": boto3.client("dynamodb", region_name=region, config=retry),
        "sqs": boto3.client("sqs", region_name=region, config=retry),
        # Completion events are put right after a job's end, inside the callback's answer: a stalled
        # EventBridge must not hold the callback past API Gateway's 30 s (the reconciler resends).
        "events": boto3.client(
            "events",
            region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2, read_timeout=3),
        ),
        "http": urllib3.PoolManager(num_pools=4, maxsize=4),
    }


def sqs() -> Any:
    """The SQS client alone, for work that must not wait on reading the secrets."""
    return _clients()["sqs"]


@functools.cache
def profiles() -> Any:
    """The deployed output profiles (validated at synth, read once); none configured: the default."""
    from cutouts.profiles import Profiles

    path = settings().profiles_path
    return Profiles.load(path) if path else Profiles.default()


def _secret(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(name, max_age=settings().secret_max_age_seconds)
    return value.decode() if isinstance(value, bytes) else str(value)


def gateway_key() -> str:
    """The key, or GatewayKeyMissing (the user must act) / GatewayKeyUnavailable (retry)."""
    from aws_lambda_powertools.utilities import parameters

    from cutouts.gateway_key import read_gateway_key

    cfg = settings()
    return read_gateway_key(lambda: parameters.get_secret(cfg.gateway_key_secret, max_age=cfg.secret_max_age_seconds))


class _NoSigner:
    """The render function's stand-in: it never signs or verifies a callback, so it reads no signing key."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("this function has no callback signing key")


def services(signing: bool = True) -> Any:
    """The use cases' collaborators; cheap to build, so the signing keys follow rotation.

    ``signing=False``: without the callback signer (the render function, which is not granted the key).
    """
    import time

    from cutouts.callback_token import CallbackSigner, signing_keys_from_secret
    from cutouts.job_events import EventAnnouncer
    from cutouts.job_store import JobStore
    from cutouts.observability import PowertoolsRecorder, logger
    from cutouts.pixazo import PixazoGateway
    from cutouts.safe_download import MediaPolicy
    from cutouts.services import Services

    cfg = settings()
    clients = _clients()
    store = JobStore(clients["dynamodb"], cfg.table_name, cfg.job_ttl_days)
    metrics = PowertoolsRecorder()
    announcer = EventAnnouncer(
        clients["events"],
        store,
        metrics,
        input_prefix=cfg.input_prefix,
        failure_prefix=cfg.failure_prefix,
        clock=time.time,
        log=logger.warning,
    )
    store.on_announced = announcer  # every ending write announces itself (job_store.apply)
    built = Services(
        settings=cfg,
        s3=clients["s3"],
        store=store,
        gateway=PixazoGateway(
            cfg.gateway_base_url, cfg.gateway_model_path, gateway_key, clients["http"], cfg.http_timeout_seconds
        ),
        signer=CallbackSigner(signing_keys_from_secret(_secret(cfg.signing_secret)))
        if signing
        else cast(CallbackSigner, _NoSigner()),
        metrics=metrics,
        media_policy=MediaPolicy(
            cfg.allowed_media_hosts, cfg.max_media_bytes, cfg.http_timeout_seconds, cfg.allow_http_media
        ),
        sqs=clients["sqs"],
        events=announcer,
        profiles=profiles(),
    )
    _defer_rendered_ends(announcer, built)
    return built


def _defer_rendered_ends(announcer: Any, built: Any) -> None:
    """A job whose outputs are rendered is announced by the render function, once they exist (render_events)."""
    from cutouts.render_events import existing_outputs, render_retry_window, renders_later

    announcer.defer = lambda job: renders_later(job, built.settings)
    announcer.outputs_of = lambda job: existing_outputs(job, built)
    announcer.defer_for_seconds = render_retry_window(built.settings)


def reset() -> None:
    """Forget cached settings and clients (tests and the local stack change the environment)."""
    settings.cache_clear()
    _clients.cache_clear()
    profiles.cache_clear()
    try:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
    except ImportError:  # pragma: no cover
        pass
