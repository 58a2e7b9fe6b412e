"""Reading the source object once: is it still there, still this version, an image, and its hash.

One GET of the key's *current* object answers all of it: a 404 means it was deleted (with
versioning, a delete marker), a different version id or ETag means it was overwritten (that
upload's own event will handle it), and the bytes are sniffed (head and tail) and, for content
de-duplication, hashed as they stream past. Without de-duplication only the first 64 KiB and
the last 1 KiB are read.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts.image_sniff import HEAD_BYTES, TAIL_BYTES, ImageInfo, sniff_image

CHUNK_BYTES = 1024 * 1024
_GONE = ("404", "NoSuchKey", "NoSuchVersion")


class SourceGone(Exception):
    """The key no longer holds an object."""


class SourceReplaced(Exception):
    """The key now holds another version than the event named."""


class SourceBytes(NamedTuple):
    info: ImageInfo
    size: int
    content_hash: str | None


def read_source(
    s3: Any,
    bucket: str,
    key: str,
    version_id: str | None,
    etag: str | None,
    *,
    max_bytes: int,
    max_pixels: int,
    with_hash: bool,
) -> SourceBytes:
    """Check the current object is the event's version and a supported image; RejectedImage if not."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if not with_hash:
        params["Range"] = f"bytes=0-{HEAD_BYTES - 1}"
    try:
        reply = s3.get_object(**params)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in _GONE:
            raise SourceGone() from None
        if code == "InvalidRange":  # a zero-byte object has no byte 0
            reply = s3.get_object(Bucket=bucket, Key=key)
        else:
            raise
    body = reply["Body"]
    try:
        current_etag = str(reply.get("ETag", "")).strip('"')
        if (version_id and reply.get("VersionId") and reply["VersionId"] != version_id) or (
            not version_id and etag and current_etag != etag.strip('"')
        ):
            raise SourceReplaced()
        size = _total_size(reply)
        if size == 0 or size > max_bytes:
            sniff_image(b"", b"", size, max_bytes, max_pixels)  # raises RejectedImage
        digest = None
        if with_hash:
            hasher, head, tail = hashlib.sha256(), b"", b""
            for chunk in body.iter_chunks(CHUNK_BYTES):
                hasher.update(chunk)
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                tail = (tail + chunk)[-TAIL_BYTES:]
            digest = hasher.hexdigest()
        else:
            head = body.read()
            tail = head
            if size > len(head):
                pinned = {"VersionId": reply["VersionId"]} if reply.get("VersionId") else {}
                tail = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{TAIL_BYTES}", **pinned)["Body"].read()
    finally:
        body.close()
    info = sniff_image(head, tail, size, max_bytes, max_pixels)
    return SourceBytes(info=info, size=size, content_hash=digest)


def _total_size(reply: dict[str, Any]) -> int:
    content_range = reply.get("ContentRange")  # "bytes 0-65535/123456"
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return int(reply.get("ContentLength", 0))
