"""S3's limits, which moto does not enforce, so code that must keep within them is tested.

A key over 1,024 bytes of UTF-8 is refused with 400 ``KeyTooLongError``, user metadata over 2 KB
with 400 ``MetadataTooLarge``, and a CopyObject whose ``CopySourceIfMatch`` names another ETag
with 412 ``PreconditionFailed`` (moto copies whatever the ETag).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.moto_server.fidelity import S3_LOCK

MAX_KEY_BYTES = 1024
MAX_USER_METADATA_BYTES = 2048
_META_PREFIX = "x-amz-meta-"
_SUBRESOURCES = ("retention", "legal-hold", "acl", "tagging")


def _header_bytes(text: str) -> int:
    try:
        return len(text.encode("latin-1"))  # what came over the wire (WSGI decodes it as latin-1)
    except UnicodeEncodeError:
        return len(text.encode("utf-8"))


def user_metadata_bytes(headers: Iterable[tuple[str, str]]) -> int:
    """S3's measure: the UTF-8 bytes of every user metadata name (after ``x-amz-meta-``) and value."""
    return sum(
        _header_bytes(name[len(_META_PREFIX) :]) + _header_bytes(value)
        for name, value in headers
        if name.lower().startswith(_META_PREFIX)
    )


def make_s3_limits_enforced() -> None:
    from moto.s3.exceptions import PreconditionFailed, S3ClientError
    from moto.s3.responses import S3Response

    if getattr(S3Response._key_response_put, "_cutouts_limits", False):
        return

    class KeyTooLongError(S3ClientError):
        code = "KeyTooLongError"

        def __init__(self, size: int) -> None:
            super().__init__("KeyTooLongError", "Your key is too long")
            self.size, self.max_size_allowed = size, MAX_KEY_BYTES

    class MetadataTooLarge(S3ClientError):
        code = "MetadataTooLarge"

        def __init__(self, size: int) -> None:
            super().__init__("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.")
            self.size, self.max_size_allowed = size, MAX_USER_METADATA_BYTES

    def check_key(key_name: str) -> None:
        size = len(key_name.encode("utf-8"))
        if size > MAX_KEY_BYTES:
            raise KeyTooLongError(size)

    def check_metadata(response: Any) -> None:
        size = user_metadata_bytes(response.headers.items())
        if size > MAX_USER_METADATA_BYTES:
            raise MetadataTooLarge(size)

    def check_copy_source_if_match(response: Any) -> None:
        wanted = response.headers.get("x-amz-copy-source-if-match")
        if wanted is None:
            return
        source = urlsplit(response.headers["x-amz-copy-source"])
        bucket, _, key = unquote(source.path).lstrip("/").partition("/")
        version_id = parse_qs(source.query).get("versionId", [None])[0]
        current = response.backend.get_object(bucket, key, version_id=version_id)
        if current is None:
            return  # moto answers the missing source itself
        etags = {tag.strip().strip('"') for tag in wanted.split(",")}
        if "*" not in etags and current.etag.strip('"') not in etags:
            raise PreconditionFailed("x-amz-copy-source-If-Match")

    put = S3Response._key_response_put
    post = S3Response._key_response_post

    def key_response_put(self: Any, query: dict[str, Any], key_name: str) -> Any:
        check_key(key_name)
        if any(name in query for name in _SUBRESOURCES) or "partNumber" in query:
            return put(self, query, key_name)
        copying = "x-amz-copy-source" in self.headers
        if not copying or (self.headers.get("x-amz-metadata-directive") or "COPY").upper() == "REPLACE":
            check_metadata(self)
        if not copying:
            return put(self, query, key_name)
        with S3_LOCK:  # the ETag check and the copy are one step, as in S3
            check_copy_source_if_match(self)
            return put(self, query, key_name)

    def key_response_post(self: Any, request: Any, body: bytes, bucket: str, query: dict[str, Any], key: str) -> Any:
        if "uploads" in query:
            check_key(key)
            check_metadata(self)
        return post(self, request, body, bucket, query, key)

    patches: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
        ("_key_response_put", key_response_put, put),
        ("_key_response_post", key_response_post, post),
    ]
    for name, patched, original in patches:
        functools.update_wrapper(patched, original)
        patched._cutouts_limits = True  # type: ignore[attr-defined]
        setattr(S3Response, name, patched)
