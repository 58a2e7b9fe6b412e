"""What a submission or a status poll is answered, in the reference's check order.

Submit: 401 key, 400 model, 429 rate limit, 400 body, 402 balance, 5xx, 202. A rejected
submission creates no job and is not charged. Kept apart from the HTTP plumbing, so the order
reads in one place.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from local.gateway_emulator.faults import SERVER_ERRORS
from local.gateway_emulator.jobs import Job, source_of, timestamp, uuid7
from local.gateway_emulator.reference import KEY_HEADER, MODEL_ROUTE, STATUS_PATH, WEBHOOK_HEADER

if TYPE_CHECKING:
    from local.gateway_emulator.emulator import GatewayEmulator

logger = logging.getLogger("local.gateway")

Answer = tuple[int, dict[str, Any], dict[str, str]]  # (status, JSON body, extra headers)


def submit(emulator: GatewayEmulator, path: str, headers: Any, body: bytes) -> Answer:
    """Decide the answer to a submission, counting it and any rejection."""
    emulator.ledger.count("requests_total")
    status, document, extra = _admit(emulator, path, headers, body)
    if status != 202:
        emulator.ledger.reject(status)
    return status, document, extra


def poll(emulator: GatewayEmulator, request_id: str, headers: Any) -> tuple[int, dict[str, Any]]:
    denied = check_key(emulator.api_key, headers)
    if denied:
        return 401, denied
    emulator.ledger.count("status_polls")
    document = emulator.ledger.status_document(request_id)
    if document is None:
        return 404, {"error": "Not Found", "message": f"Request '{request_id}' not found"}
    return 200, document


def check_key(api_key: str, headers: Any) -> dict[str, Any] | None:
    """The 401 body for a missing or wrong key, or None when the key is right."""
    key = headers.get(KEY_HEADER)
    if not key:
        return {
            "error": "Unauthorized",
            "message": "Access denied due to missing subscription key. Make sure to include "
            "subscription key when making requests to an API.",
        }
    if key != api_key:
        return {
            "error": "Unauthorized",
            "message": "Access denied due to invalid subscription key. Make sure to provide "
            "a valid key for an active subscription.",
        }
    return None


def _admit(emulator: GatewayEmulator, path: str, headers: Any, body: bytes) -> Answer:
    denied = check_key(emulator.api_key, headers)
    if denied:
        return 401, denied, {}
    model = MODEL_ROUTE.match(path)
    assert model is not None
    if path != emulator.model_path:
        return (
            400,
            {
                "error": "Model not found",
                "message": f"Model '{model.group(1)}' not found or is disabled",
            },
            {},
        )
    faults = emulator.faults
    drawn = emulator.draws.submission()
    if drawn.throttled:
        return (
            429,
            {
                "error": "Too Many Requests",
                "message": f"Rate limit is exceeded. Try again in {faults.retry_after_seconds} seconds.",
            },
            {"Retry-After": str(faults.retry_after_seconds)},
        )
    try:
        payload = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return 400, {"error": "Bad Request", "message": "Request body must be valid JSON."}, {}
    image_url = payload.get("image_url") if isinstance(payload, dict) else None
    if not isinstance(image_url, str) or not image_url.strip():
        return 400, {"error": "Bad Request", "message": "'image_url' is required."}, {}
    if urlsplit(image_url).scheme not in ("http", "https") or not urlsplit(image_url).netloc:
        return (
            400,
            {"error": "Bad Request", "message": "'image_url' must be an http(s) URL."},
            {},
        )
    webhook_url = headers.get(WEBHOOK_HEADER)
    if webhook_url is not None and (
        urlsplit(webhook_url).scheme not in ("http", "https") or not urlsplit(webhook_url).netloc
    ):
        return (
            400,
            {"error": "Bad Request", "message": f"'{WEBHOOK_HEADER}' must be an http(s) URL."},
            {},
        )
    if faults.insufficient_balance:
        return (
            402,
            {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."},
            {},
        )
    if drawn.server_error is not None:
        title, message = SERVER_ERRORS[drawn.server_error]
        return drawn.server_error, {"error": title, "message": message}, {}
    job = _create_job(emulator, image_url, webhook_url)
    emulator.pool.enqueue(job.request_id)
    return (
        202,
        {
            "request_id": job.request_id,
            "status": "QUEUED",
            "polling_url": f"{emulator.base_url}{STATUS_PATH}{job.request_id}",
        },
        {},
    )


def _create_job(emulator: GatewayEmulator, image_url: str, webhook_url: str | None) -> Job:
    drawn = emulator.draws.job()
    now = timestamp()
    job = Job(
        request_id=f"{emulator.model_id}_{uuid7()}",
        model_id=emulator.model_id,
        image_url=image_url,
        source=source_of(image_url),
        webhook_url=webhook_url,
        fate=drawn.fate,
        callback_plan=drawn.callback_plan,
        late_callback=drawn.late_callback,
        created_at=now,
        updated_at=now,
    )
    if drawn.malformed_media_url is not None:
        job.malformed_media_url = drawn.malformed_media_url.format(
            rid=job.request_id, netloc=urlsplit(emulator.base_url).netloc
        )
    emulator.ledger.accept(job)
    logger.info("accepted %s for %s (fate %s)", job.request_id, job.source, drawn.fate)
    return job
