"""The Pixazo gateway serving Bria RMBG 2.0 (see the reference API): the one provider today.

This is the one place that turns Pixazo's HTTP answers into the gateway seam's exception types:
whether an error is transient or permanent is decided here, by status code, and nowhere else.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ProtocolError, ReadTimeoutError

from cutouts.constants import GATEWAY_STATUS_PATH
from cutouts.gateway import (
    KNOWN_STATUSES,
    QUEUED,
    GatewayInDoubt,
    GatewayPermanentError,
    GatewayStatus,
    GatewayTransientError,
    JobStatus,
    Submission,
)
from cutouts.gateway_key import GatewayKeyMissing

# What the user must do about each permanent answer; the failure report quotes it.
PERMANENT: dict[int, tuple[str, str]] = {
    400: (
        "gateway-bad-request",
        "The gateway rejected the request as malformed, or the model is disabled: "
        "check the gatewayModelPath context value.",
    ),
    401: (
        "gateway-unauthorized",
        "The gateway key is missing or wrong: put a valid key into the gateway key secret, then retry the failed jobs.",
    ),
    402: (
        "gateway-insufficient-balance",
        "The gateway wallet has too little balance: top it up, then retry the failed jobs.",
    ),
    403: ("gateway-forbidden", "The gateway key may not use this model: check the subscription."),
    404: (
        "gateway-not-found",
        "The gateway does not know this model or path: check gatewayBaseUrl and gatewayModelPath.",
    ),
}
KEY_MISSING = (
    "gateway-key-missing",
    "The gateway key secret is empty or unreadable: put your gateway API key into it "
    "(stack output GatewayKeySecretArn), then retry the failed jobs.",
)
# Transient, unlike KEY_MISSING: the job ends with it only if every delivery failed to read the key.
KEY_UNREADABLE = (
    "gateway-key-unreadable",
    "Secrets Manager could not be read on every delivery (throttled, or unreachable from the functions): "
    "check the functions' network path to Secrets Manager and its error rate, then retry the failed jobs.",
)
REJECTED = (
    "gateway-rejected",
    "The gateway refused the request with an unexpected 4xx: see gateway_error and http_status, "
    "fix what it names, then retry the job.",
)
# Transient, unlike the others: the job ends with it only if every delivery found nothing listening.
UNREACHABLE = (
    "gateway-unreachable",
    "Nothing answered at the gateway's address (connection refused or timed out): check gatewayBaseUrl "
    "and that the gateway is up and reachable from the functions, then retry the job.",
)
# Every reason this provider ends a job with, and what to do about it (reports.advice_for reads it).
ADVICE: dict[str, str] = dict([*PERMANENT.values(), KEY_MISSING, KEY_UNREADABLE, REJECTED, UNREACHABLE])


def parse_status_document(doc: Any) -> JobStatus:
    """Validate a status document (status endpoint or webhook body); ValueError if malformed."""
    if not isinstance(doc, dict):
        raise ValueError("the status document is not a JSON object")
    request_id, status = doc.get("request_id"), doc.get("status")
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("the status document has no request_id")
    if not isinstance(status, str) or status not in KNOWN_STATUSES:
        raise ValueError(f"the status document has an unknown status {status!r}")
    output = doc.get("output") or {}
    urls = output.get("media_url") if isinstance(output, dict) else None
    if isinstance(urls, str):
        urls = [urls]
    media = tuple(u for u in (urls or []) if isinstance(u, str))
    error = doc.get("error")
    return JobStatus(
        request_id=request_id,
        status=GatewayStatus(status),
        error=str(error) if error is not None else None,
        media_urls=media,
        created_at=doc.get("created_at"),
        completed_at=doc.get("completed_at"),
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from this gateway; the caller's backoff applies


def _error_text(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace") or None
    if isinstance(doc, dict):
        parts = [str(doc[k]) for k in ("error", "message") if doc.get(k)]
        return ": ".join(parts) or None
    return None


class PixazoGateway:
    """Submit images and read job status. The key is fetched per call from a cached provider."""

    def __init__(
        self,
        base_url: str,
        model_path: str,
        api_key: Callable[[], str],
        http: urllib3.PoolManager,
        timeout_seconds: float,
    ) -> None:
        self._submit_url = base_url.rstrip("/") + model_path
        self._status_url = base_url.rstrip("/") + GATEWAY_STATUS_PATH
        self._api_key = api_key
        self._http = http
        self._connect_seconds, self._read_seconds = min(3.0, timeout_seconds), timeout_seconds
        self._deadline: float | None = None

    def until(self, deadline: float) -> PixazoGateway:
        """A copy whose calls end by ``deadline`` (time.monotonic()), for one invocation's budget."""
        bounded = copy.copy(self)
        bounded._deadline = deadline
        return bounded

    def _timeout(self) -> urllib3.Timeout:
        """The configured time-outs, cut to what is left before the deadline (none left: transient)."""
        left = float("inf") if self._deadline is None else self._deadline - time.monotonic()
        if left <= 0:
            raise GatewayTransientError("no time left in this invocation for a gateway call")
        return urllib3.Timeout(connect=min(self._connect_seconds, left), read=min(self._read_seconds, left))

    def _headers(self) -> dict[str, str]:
        try:
            key = self._api_key()
        except GatewayKeyMissing as exc:  # no value, or access denied: the user must act
            raise GatewayPermanentError(f"the gateway key could not be read: {exc}", None, *KEY_MISSING) from None
        except Exception as exc:  # a throttle, a service or network error: the next delivery tries again
            raise GatewayTransientError(
                f"the gateway key could not be read now: {exc or type(exc).__name__}", reason=KEY_UNREADABLE[0]
            ) from None
        if not key:
            raise GatewayPermanentError("the gateway key secret is empty", None, *KEY_MISSING)
        return {
            "Content-Type": "application/json",
            "Cache-Control": "no-cache",
            "Ocp-Apim-Subscription-Key": key,
        }

    def submit(self, image_url: str, webhook_url: str) -> Submission:
        headers = self._headers() | {"X-Webhook-URL": webhook_url}
        body = json.dumps({"image_url": image_url}).encode()
        try:
            response = self._http.request(
                "POST",
                self._submit_url,
                body=body,
                headers=headers,
                timeout=self._timeout(),
                retries=False,
                redirect=False,
            )
        except (NewConnectionError, ConnectTimeoutError) as exc:
            raise GatewayTransientError(
                f"could not connect to the gateway: {type(exc).__name__}", reason=UNREACHABLE[0]
            ) from None
        except (ReadTimeoutError, ProtocolError) as exc:
            raise GatewayInDoubt(f"the gateway did not answer the submission: {type(exc).__name__}") from None
        except HTTPError as exc:
            raise GatewayTransientError(f"gateway request failed: {type(exc).__name__}") from None
        if response.status in (200, 201, 202):
            try:
                doc = json.loads(response.data)
                request_id = doc["request_id"]
                if not isinstance(request_id, str) or not request_id:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise GatewayInDoubt(
                    f"the gateway accepted the submission ({response.status}) but its answer is not the "
                    "documented JSON",
                    http_status=response.status,
                ) from None
            return Submission(request_id=request_id, status=str(doc.get("status", QUEUED)))
        self._raise_for(response)
        raise AssertionError("unreachable")

    def status(self, request_id: str) -> JobStatus:
        url = self._status_url + quote(request_id, safe="")
        try:
            response = self._http.request(
                "GET", url, headers=self._headers(), timeout=self._timeout(), retries=False, redirect=False
            )
        except HTTPError as exc:
            raise GatewayTransientError(f"gateway status request failed: {type(exc).__name__}") from None
        if response.status == 200:
            try:
                status = parse_status_document(json.loads(response.data))
            except ValueError as exc:
                raise GatewayTransientError(f"the gateway's status answer is not usable: {exc}", 200) from None
            if status.request_id != request_id:
                raise GatewayTransientError("the gateway's status answer names another request", 200)
            return status
        self._raise_for(response)
        raise AssertionError("unreachable")

    @staticmethod
    def _raise_for(response: urllib3.BaseHTTPResponse) -> None:
        code = response.status
        text = _error_text(response.data)
        if code in PERMANENT:
            reason, what_to_do = PERMANENT[code]
            raise GatewayPermanentError(f"gateway answered {code}: {text}", code, reason, what_to_do, text)
        if code == 429:
            raise GatewayTransientError(
                "gateway answered 429 Too Many Requests",
                429,
                retry_after=_retry_after(response.headers.get("Retry-After")),
                gateway_error=text,
            )
        if code >= 500 or code == 408:
            raise GatewayTransientError(f"gateway answered {code}: {text}", code, gateway_error=text)
        reason, what_to_do = REJECTED
        raise GatewayPermanentError(f"gateway answered {code}: {text}", code, reason, what_to_do, text)

    def parse_callback(self, doc: Any) -> JobStatus:
        return parse_status_document(doc)
