"""Looking at an S3 object that may not be there: the one place that knows how S3 says "gone"."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

# A missing key answers 404 (NoSuchKey on GET, NotFound on HEAD); a delete marker as the current
# version answers 405 to a HEAD. Without s3:ListBucket S3 would say 403 instead: the stack grants it.
GONE = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion", "405"})


def head_or_none(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's HEAD answer, or None if no object stands at the key."""
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in GONE:
            return None
        raise
