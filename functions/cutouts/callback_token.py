"""The callback URL proves itself: it carries the job id, the attempt and an HMAC of both.

The gateway cannot sign its webhooks, so the only thing a caller can show is the URL we gave it.
Verification compares against every active key without stopping early, with hmac.compare_digest,
so the time taken says nothing about how much of a guess was right.

Rotating the signing key. Every function reads the secret through a cache that lives
the secret cache's lifetime (a setting, 300 s by default), so for that long
some warm functions still hold the old document. Each step therefore only adds a key that every
function already accepts, or removes one nobody signs with any more:

1. Add ``"next": "<new key, at least 32 characters>"`` beside ``current``.
   Nothing signs with it yet. Wait the secret cache's lifetime so every function verifies it.
2. Promote: ``{"current": "<new>", "previous": "<old>"}``. New callback URLs carry the new key;
   functions still caching step 1's document accept them through ``next`` (and keep signing
   with the old key until their cache expires), and URLs already handed to the gateway verify
   through ``previous``. Wait the cache's lifetime + the maximum job age + one reconcile
   interval, so every job holding a URL signed with the old key has finished.
3. Drop ``previous``: ``{"current": "<new>"}``.
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


MIN_KEY_CHARS = 32
SIGNING_ROLES = ("current", "previous", "next")  # current signs; all three verify


def signing_keys_from_secret(secret_string: str) -> list[bytes]:
    """The secret is ``{"current": "...", "previous": "...", "next": "..."}``; only current is required.

    The first key returned signs, every key verifies. "next" exists so that every warm function
    accepts a new key before any function signs with it (see the rotation procedure above). A
    present optional key that is not a string of at least 32 characters is refused like a bad
    current key: silently dropping it would surface only at the next rotation step, as 403s.
    """
    try:
        doc = json.loads(secret_string)
    except ValueError:
        raise SigningKeyError("the signing secret is not JSON") from None
    if not isinstance(doc, dict) or not _usable(doc.get("current")):
        raise SigningKeyError(f'the signing secret must be {{"current": "<at least {MIN_KEY_CHARS} characters>"}}')
    keys = []
    for role in SIGNING_ROLES:
        value = doc.get(role)
        if value is None:
            continue
        if not _usable(value):
            raise SigningKeyError(
                f'the signing secret\'s "{role}" key must be a string of at least {MIN_KEY_CHARS} characters'
            )
        keys.append(value.encode())
    return keys


def _usable(value: object) -> bool:
    return isinstance(value, str) and len(value) >= MIN_KEY_CHARS


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
