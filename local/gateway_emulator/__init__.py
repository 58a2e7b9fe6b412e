"""A local, faithful emulator of the Pixazo gateway serving Bria RMBG 2.0.

It implements the reference (``shared/reference/gateway-api-bria-rmbg-2.0.txt``) over real HTTP
on loopback, so the pipeline's gateway adapter, callback route and reconciler are exercised
exactly as in production:

* ``POST {model_path}`` (default ``/bria-rmbg-2-0-682/v1/bria-rmbg-2-0-request``): key in
  ``Ocp-Apim-Subscription-Key``, JSON body ``{"image_url": ...}``, optional ``X-Webhook-URL``;
  answers 202 ``{"request_id", "status": "QUEUED", "polling_url"}`` or an error.
* ``GET /v2/requests/status/{request_id}``: key required; the status document.
* ``GET /media/{request_id}/output.png``: the cutout, no key (it stands in for the R2 CDN).
* ``GET /_emulator/stats``: accounting for tests (not part of the reference).

Jobs run on worker threads: QUEUED, PROCESSING, then the emulator downloads ``image_url`` (a
presigned S3 URL in the local stack: the real gateway fetches it, so we do too), removes the
background with :func:`local.background_removal.remove_background` and ends COMPLETED, or FAILED
or ERROR. Terminal states are POSTed to the ``X-Webhook-URL`` with the status document as body.

Faults (:class:`FaultConfig`) make it misbehave the ways a remote gateway does: slow jobs, 429
with ``Retry-After``, 5xx, FAILED and ERROR jobs, jobs stuck in PROCESSING, dropped, duplicated
and late call-backs, an empty wallet (402), and COMPLETED answers whose ``media_url`` is
malformed or points somewhere the pipeline must not fetch from (:data:`MALFORMED_MEDIA_URLS`).

Choices where the reference is silent (also in the README):

* Error bodies are JSON ``{"error": ..., "message": ...}`` like the reference's queue errors,
  for 401, 404, 405, 429 and 5xx too.
* A POST to ``/{model}/v1/{operation}`` for another model answers **400** "Model not found" (the
  reference's code for an unknown or disabled model); any other unknown path answers 404. The
  key is checked before the model (the queue system sits behind the key check); unknown paths
  answer 404 whatever the key (as API Management does for an unknown operation).
* Check order on submit: 401 key, 400 model, 429 rate limit, 400 body, 402 balance, 5xx, 202.
  A rejected submission creates no job and is not charged.
* FAILED (injected, or the image could not be fetched or decoded) is a model failure and is
  **charged**; ERROR ("system error - not charged") is not; COMPLETED is charged. Charges are
  counted per source object version and per SHA-256 of the bytes fetched (a FAILED job fetches
  its image first, as a model failure comes after the download).
* Every status document carries all of ``request_id, status, model_id, error, output,
  created_at, updated_at, completed_at``; ``completed_at`` is set for every terminal state
  (COMPLETED, FAILED, ERROR) and null before; ``output`` is null unless COMPLETED.
* Call-backs go out for terminal states only, as ``POST`` with ``Content-Type:
  application/json``, a 5 s timeout, **no redirects followed** (a 3xx is a failed delivery),
  and up to 3 attempts (0.25 s, then 0.5 s apart) on a connection error or a 5xx; a 2xx-4xx
  answer ends the delivery.
* Media are served as ``application/octet-stream``, the ``media_type`` the status reports.
* ``request_id`` is ``{model_id}_{uuid7}`` (the reference's ``019d...`` ids are time-ordered).

The parts, one concern each: :mod:`.reference` (paths, headers, defaults), :mod:`.faults` (the
fault settings and their seeded draws), :mod:`.jobs` (job records and accounting),
:mod:`.answers` (what a submission or poll is answered), :mod:`.worker` (the processing pool),
:mod:`.callbacks` (delivering call-backs), :mod:`.http_server` (the HTTP handler),
:mod:`.emulator` (wiring and lifecycle) and :mod:`.cli` (``python -m local gateway``).
"""

from __future__ import annotations

from local.gateway_emulator.callbacks import (
    CALLBACK_ATTEMPTS,
    CALLBACK_BACKOFF_SECONDS,
    CALLBACK_TIMEOUT_SECONDS,
    DUPLICATE_CALLBACK_GAP_SECONDS,
)
from local.gateway_emulator.cli import add_gateway_arguments, faults_from_args, run_gateway
from local.gateway_emulator.emulator import GatewayEmulator
from local.gateway_emulator.faults import MALFORMED_MEDIA_URLS, FaultConfig
from local.gateway_emulator.jobs import source_of
from local.gateway_emulator.reference import (
    DEFAULT_API_KEY,
    DEFAULT_MODEL_PATH,
    DEFAULT_PORT,
    KEY_HEADER,
    MAX_BODY_BYTES,
    MEDIA_PATH,
    MEDIA_TYPE,
    STATS_PATH,
    STATUS_PATH,
    WEBHOOK_HEADER,
)
from local.gateway_emulator.worker import FETCH_TIMEOUT_SECONDS, MAX_IMAGE_BYTES

__all__ = [
    "CALLBACK_ATTEMPTS",
    "CALLBACK_BACKOFF_SECONDS",
    "CALLBACK_TIMEOUT_SECONDS",
    "DEFAULT_API_KEY",
    "DEFAULT_MODEL_PATH",
    "DEFAULT_PORT",
    "DUPLICATE_CALLBACK_GAP_SECONDS",
    "FETCH_TIMEOUT_SECONDS",
    "KEY_HEADER",
    "MALFORMED_MEDIA_URLS",
    "MAX_BODY_BYTES",
    "MAX_IMAGE_BYTES",
    "MEDIA_PATH",
    "MEDIA_TYPE",
    "STATS_PATH",
    "STATUS_PATH",
    "WEBHOOK_HEADER",
    "FaultConfig",
    "GatewayEmulator",
    "add_gateway_arguments",
    "faults_from_args",
    "run_gateway",
    "source_of",
]
