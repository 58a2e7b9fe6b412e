"""Where a job's master and its prepared input live, and how output reports are named.

The master is the gateway's full-size PNG for a source key, kept so every output can be rendered
again without paying: ``<work>masters/<relative path>.png``. Keyed by the source key (not the
job), so ``rerender`` lists the masters of a prefix the way users think of their uploads, and the
newest version's master replaces the older one under the same output lease as its outputs. The
work prefix is outside the input prefix, so nothing written there triggers the pipeline.
"""

from __future__ import annotations

from typing import Any

from cutouts.keys import relative_key

MASTERS = "masters/"
NORMALISED = "normalised/"  # expired by a lifecycle rule: a copy is needed only until it is submitted
MASTER_EXTENSION = ".png"


def master_key(key: str, input_prefix: str, work_prefix: str) -> str:
    return f"{work_prefix}{MASTERS}{relative_key(key, input_prefix)}{MASTER_EXTENSION}"


def masters_prefix(work_prefix: str, relative_prefix: str = "") -> str:
    return f"{work_prefix}{MASTERS}{relative_prefix}"


def source_key_of_master(key: str, input_prefix: str, work_prefix: str) -> str | None:
    """The upload a master was made for, or None if the key is not a master's."""
    prefix = masters_prefix(work_prefix)
    if not key.startswith(prefix) or not key.endswith(MASTER_EXTENSION):
        return None
    return input_prefix + key[len(prefix) : -len(MASTER_EXTENSION)]


def normalised_key(job_id: str, work_prefix: str) -> str:
    """One normalised copy per job (object version): a redelivery finds the copy already made."""
    return f"{work_prefix}{NORMALISED}{job_id}"


def output_report_key(key: str, input_prefix: str, failure_prefix: str, output_name: str) -> str:
    """A failed output's report, beside the job's own report: ``<failure><relative>.<name>.json``."""
    return f"{failure_prefix}{relative_key(key, input_prefix)}.{output_name}.json"


def stream_copy(
    s3: Any, bucket: str, source_key: str, target_key: str, metadata: dict[str, str], content_type: str
) -> None:
    """A server-side copy with new metadata: no bytes pass through the function (flat memory)."""
    s3.copy_object(
        Bucket=bucket,
        Key=target_key,
        CopySource={"Bucket": bucket, "Key": source_key},
        MetadataDirective="REPLACE",
        ContentType=content_type,
        Metadata=metadata,
    )
