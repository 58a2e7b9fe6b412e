"""How S3 keys, job ids and output keys relate.

Output mapping: the cutout of ``<input>/a/cat.jpg`` is ``<output>/a/cat.jpg.png`` and its failure
report ``<failure>/a/cat.jpg.json``. Appending (rather than replacing the extension) keeps the
mapping one-to-one: ``cat.jpg`` and ``cat.png`` can never overwrite each other's cutout.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote, unquote_plus


def decode_event_key(raw_key: str) -> str:
    """S3 event keys are URL-encoded with '+' for space; '+' itself arrives as '%2B'."""
    return unquote_plus(raw_key)


def job_version(version_id: str | None, etag: str | None) -> str:
    """Which identity of an object version keys its job: the VersionId, else the ETag."""
    return version_id or (etag or "").strip('"') or "unversioned"


def job_id_for(bucket: str, key: str, version: str) -> str:
    """Deterministic id of one source object version: duplicate deliveries share it."""
    digest = hashlib.sha256(f"{bucket}\x00{key}\x00{version}".encode()).hexdigest()
    return digest[:32]


def relative_key(key: str, input_prefix: str) -> str:
    if not key.startswith(input_prefix):
        raise ValueError(f"key {key!r} is not under the input prefix {input_prefix!r}")
    return key[len(input_prefix) :]


def output_key_for(key: str, input_prefix: str, output_prefix: str) -> str:
    return f"{output_prefix}{relative_key(key, input_prefix)}.png"


def failure_key_for(key: str, input_prefix: str, failure_prefix: str) -> str:
    return f"{failure_prefix}{relative_key(key, input_prefix)}.json"


def padded_sequencer(sequencer: str) -> str:
    """S3 sequencers compare as hex numbers; left-padding makes plain string order agree."""
    return sequencer.upper().rjust(32, "0")


def cutout_metadata(key: str, version: str, job_id: str, request_id: str) -> dict[str, str]:
    """What a cutout says of its source; ``job-id`` is how de-duplication tells its own results."""
    return {
        "source-key": quote(key, safe="/"),
        "source-version": quote(version, safe=""),
        "request-id": request_id,
        "job-id": job_id,
    }
