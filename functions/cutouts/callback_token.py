"""The callback URL proves itself: it carries the job id, the attempt and an HMAC of both.

The gateway cannot sign its webhooks, so the only thing a caller can show is the URL we gave it.
Verification compares against every active key without stopping early, with hmac.compare_digest,
so the time taken says nothing about how much of a guess was right.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from urllib.parse import quote, urlencode


class SigningKeyError(ValueError):
    """The signing secret does not hold the expected JSON document."""


def signing_keys_from_secret(secret_string: str) -> list[bytes]:
    """The secret is ``{"current": "...", "previous": "..."}``; previous is optional (rotation)."""
    try:
        doc = json.loads(secret_string)
    except ValueError:
        raise SigningKeyError("the signing secret is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("current"), str) or len(doc["current"]) < 32:
        raise SigningKeyError('the signing secret must be {"current": "<at least 32 characters>"}')
    keys = [doc["current"].encode()]
    previous = doc.get("previous")
    if isinstance(previous, str) and len(previous) >= 32:
        keys.append(previous.encode())
    return keys


class CallbackSigner:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SigningKeyError("no signing key")
        self._keys = list(keys)

    @staticmethod
    def _mac(key: bytes, job_id: str, attempt: int) -> str:
        digest = hmac.new(key, f"cutouts-callback\x00{job_id}\x00{attempt}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def token(self, job_id: str, attempt: int) -> str:
        return self._mac(self._keys[0], job_id, attempt)

    def verify(self, job_id: str, attempt: int, token: str) -> bool:
        given = token.encode("ascii", "replace")
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(self._mac(key, job_id, attempt).encode(), given)
        return matched

    def callback_url(self, base_url: str, job_id: str, attempt: int) -> str:
        query = urlencode({"attempt": attempt, "token": self.token(job_id, attempt)})
        return f"{base_url.rstrip('/')}/callback/{quote(job_id, safe='')}?{query}"
