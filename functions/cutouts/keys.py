"""How S3 keys, job ids and output keys relate.

Output mapping: the cutout of ``<input>/a/cat.jpg`` is ``<output>/a/cat.jpg.png`` and its failure
report ``<failure>/a/cat.jpg.json``. Appending (rather than replacing the extension) keeps the
mapping one-to-one: ``cat.jpg`` and ``cat.png`` can never overwrite each other's cutout.

S3 limits keys to 1,024 bytes of UTF-8 and user metadata to 2 KB. A source whose cutout key would
not fit cannot be processed; its report goes to ``<failure>key-too-long/<sha256 of the key>.json``
so the user is still told. Metadata carries the source key only while it stays small.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote, unquote_plus

from cutouts.output_format import CUTOUT, OutputFormat


def decode_event_key(raw_key: str) -> str:
    """S3 event keys are URL-encoded with '+' for space; '+' itself arrives as '%2B'."""
    return unquote_plus(raw_key)


MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048
MAX_SOURCE_KEY_METADATA_BYTES = 512  # leaves room for the other values, well under 2 KB


def real_version_id(version_id: str | None) -> str | None:
    """A bucket whose versioning is suspended names new objects' version ``"null"``: no version."""
    return None if not version_id or version_id == "null" else version_id


def is_folder_marker(key: str) -> bool:
    """The S3 console's "Create folder" writes a zero-byte object whose key ends in ``/``."""
    return key.endswith("/")


def job_version(version_id: str | None, etag: str | None) -> str:
    """Which identity of an object version keys its job: the VersionId, else the ETag."""
    return real_version_id(version_id) or (etag or "").strip('"') or "unversioned"


def job_id_for(bucket: str, key: str, version: str) -> str:
    """Deterministic id of one source object version: duplicate deliveries share it."""
    digest = hashlib.sha256(f"{bucket}\x00{key}\x00{version}".encode()).hexdigest()
    return digest[:32]


def relative_key(key: str, input_prefix: str) -> str:
    if not key.startswith(input_prefix):
        raise ValueError(f"key {key!r} is not under the input prefix {input_prefix!r}")
    return key[len(input_prefix) :]


def output_key_for(key: str, input_prefix: str, output_prefix: str, fmt: OutputFormat = CUTOUT) -> str:
    return f"{output_prefix}{relative_key(key, input_prefix)}{fmt.extension}"


def failure_key_for(key: str, input_prefix: str, failure_prefix: str) -> str:
    """The report's key beside the outputs; a hashed one when the natural key would be too long."""
    natural = f"{failure_prefix}{relative_key(key, input_prefix)}.json"
    if fits_s3_key(natural):
        return natural
    return f"{failure_prefix}key-too-long/{hashlib.sha256(key.encode()).hexdigest()}.json"


def fits_s3_key(key: str) -> bool:
    return len(key.encode()) <= MAX_KEY_BYTES


def metadata_bytes(metadata: dict[str, str]) -> int:
    """How S3 measures user metadata: the UTF-8 bytes of every name and value."""
    return sum(len(name.encode()) + len(value.encode()) for name, value in metadata.items())


def padded_sequencer(sequencer: str) -> str:
    """S3 sequencers compare as hex numbers; left-padding makes plain string order agree."""
    return sequencer.upper().rjust(32, "0")


def cutout_metadata(key: str, version: str, job_id: str, request_id: str) -> dict[str, str]:
    """What a cutout says of its source; ``job-id`` is how de-duplication tells its own results.

    A long key (percent-quoting triples non-ASCII) is named by its SHA-256 instead, so the
    metadata always fits S3's 2 KB; the job record keeps the key itself.
    """
    quoted = quote(key, safe="/")
    named = (
        {"source-key": quoted}
        if len(quoted) <= MAX_SOURCE_KEY_METADATA_BYTES
        else {"source-key-sha256": hashlib.sha256(key.encode()).hexdigest()}
    )
    return named | {
        "source-version": quote(version, safe="")[:MAX_SOURCE_KEY_METADATA_BYTES],
        "request-id": request_id[:256],
        "job-id": job_id,
    }
