"""The table's side records: per source key, per gateway request, per content hash.

``key#<bucket>/<key>`` names the newest version seen (S3's sequencer orders them) and the job
allowed to write the key's outputs right now (the output lease); ``request#<id>`` names the one
job a gateway request belongs to; ``content#<sha256>`` names the one job that pays for those bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts.constants import TABLE_PARTITION_KEY, TABLE_TTL_ATTRIBUTE
from cutouts.job_record import (
    JobStoreError,
    TableAccess,
    content_pk,
    deserialize,
    error_code,
    key_pk,
    request_pk,
    serialize,
)

OUTPUT_LEASE_SECONDS = 120.0  # longer than any one write of an output (a download is bounded far below)


class KeyRecord(NamedTuple):
    """Per source key: the newest version seen (its job and padded sequencer), and who writes its outputs."""

    job_id: str | None = None
    sequencer: str | None = None
    writer: str | None = None

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> KeyRecord:
        def text(name: str) -> str | None:
            return str(deserialize(item[name])) if name in item else None

        return cls(text("job_id"), text("sequencer"), text("writer"))


class Lease(StrEnum):
    """Whether a job may write its key's outputs now."""

    OK = "ok"
    SUPERSEDED = "superseded"  # a newer version of the key owns its outputs
    BUSY = "busy"  # another job is writing them right now


class KeyRecords(TableAccess):
    def latest_job_for(self, bucket: str, key: str) -> str | None:
        return self.latest_record(bucket, key)[0]

    def latest_record(self, bucket: str, key: str) -> KeyRecord:
        """The key record: the newest version seen (its job and padded sequencer), or an empty one."""
        item = self._call("get_item", Key={TABLE_PARTITION_KEY: {"S": key_pk(bucket, key)}}, ConsistentRead=True)
        return KeyRecord.of(item.get("Item") or {})

    # --- writes ----------------------------------------------------------------------------

    def record_latest(self, bucket: str, key: str, sequencer: str, job_id: str, now: float) -> bool:
        """Note ``job_id`` as the newest version of the key unless a newer event was already seen."""
        return self.note_newest(bucket, key, sequencer, job_id, now) is not None

    def note_newest(self, bucket: str, key: str, sequencer: str, job_id: str, now: float) -> KeyRecord | None:
        """Like record_latest; returns the key record as it was before (empty if new), or None if superseded.

        The previous record says which job this version replaces, so it can be told.
        """
        try:
            reply = self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": key_pk(bucket, key)}},
                UpdateExpression="SET #q = :q, #j = :j, #u = :u, #t = :t",
                ConditionExpression="attribute_not_exists(#pk) OR attribute_not_exists(#q) OR #q <= :q",
                ExpressionAttributeNames={
                    "#q": "sequencer",
                    "#j": "job_id",
                    "#u": "updated_at",
                    "#t": TABLE_TTL_ATTRIBUTE,
                    "#pk": TABLE_PARTITION_KEY,
                },
                ExpressionAttributeValues={
                    ":q": {"S": sequencer},
                    ":j": {"S": job_id},
                    ":u": serialize(now),
                    ":t": serialize(int(now) + self._ttl_seconds),
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise JobStoreError(f"DynamoDB update failed: {exc.response.get('Error', {}).get('Code')}") from exc
        return KeyRecord.of(reply.get("Attributes", {}))

    def lease_output(
        self, bucket: str, key: str, job_id: str, now: float, seconds: float = OUTPUT_LEASE_SECONDS
    ) -> str:
        """Take the right to write the key's outputs (cutout, report): ``ok``, ``superseded`` or ``busy``.

        Checked at the moment of writing, on the key record itself: only the job the record names
        as the newest version may write (``superseded`` otherwise), and only one writer at a time
        (``busy`` while another job's lease runs). A lease that outlives its holder expires.
        """
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": key_pk(bucket, key)}},
                UpdateExpression="SET #w = :j, #wu = :until, #u = :now",
                ConditionExpression=(
                    "(attribute_not_exists(#j) OR #j = :j) AND (attribute_not_exists(#w) OR #w = :j OR #wu < :now)"
                ),
                ExpressionAttributeNames={"#w": "writer", "#wu": "writer_until", "#u": "updated_at", "#j": "job_id"},
                ExpressionAttributeValues={
                    ":j": {"S": job_id},
                    ":until": serialize(now + seconds),
                    ":now": serialize(now),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise JobStoreError(f"DynamoDB update failed: {error_code(exc)}") from exc
            newest = (exc.response.get("Item") or {}).get("job_id")
            newest_id = self.latest_job_for(bucket, key) if newest is None else deserialize(newest)
            return Lease.SUPERSEDED if newest_id not in (None, job_id) else Lease.BUSY
        return Lease.OK

    def release_output(self, bucket: str, key: str, job_id: str) -> None:
        """Give the lease back (only this job's own: a lease that expired and moved on stays)."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": key_pk(bucket, key)}},
                UpdateExpression="REMOVE #w, #wu",
                ConditionExpression="#w = :j",
                ExpressionAttributeNames={"#w": "writer", "#wu": "writer_until"},
                ExpressionAttributeValues={":j": {"S": job_id}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise JobStoreError(f"DynamoDB update failed: {error_code(exc)}") from exc

    def bind_request(self, request_id: str, job_id: str, now: float) -> bool:
        """Record that a gateway request belongs to this job. False: it belongs to another one.

        Every accepted or adopted request is bound before it is recorded on its job, so a
        callback cannot make one job adopt another job's request (and so its result).
        """
        return self._own(request_pk(request_id), job_id, now) == (job_id, now)

    def claim_content(self, content_hash: str, job_id: str, now: float) -> tuple[str, float]:
        """Single flight: make ``job_id`` the one job that pays for these bytes, unless one is already.

        Returns the owner and when it claimed: this job if it won, else the job that did.
        """
        return self._own(content_pk(content_hash), job_id, now)

    def _own(self, pk: str, job_id: str, now: float) -> tuple[str, float]:
        """Name ``job_id`` on the record unless another job is named there; the owner, and since when."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    TABLE_PARTITION_KEY: {"S": pk},
                    "job_id": {"S": job_id},
                    "updated_at": serialize(now),
                    TABLE_TTL_ATTRIBUTE: serialize(int(now) + self._ttl_seconds),
                },
                ConditionExpression="attribute_not_exists(#pk) OR #j = :j",
                ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY, "#j": "job_id"},
                ExpressionAttributeValues={":j": {"S": job_id}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise JobStoreError(f"DynamoDB put failed: {error_code(exc)}") from exc
            found = exc.response.get("Item")
            if not found:
                key = {TABLE_PARTITION_KEY: {"S": pk}}
                found = self._call("get_item", Key=key, ConsistentRead=True).get("Item") or {}
            if found.get("job_id"):
                return str(deserialize(found["job_id"])), float(deserialize(found.get("updated_at", {"N": "0"})))
            return self._own(pk, job_id, now)  # it expired (TTL) between the write and the read
        return job_id, now

    def content_owner(self, content_hash: str) -> str | None:
        """The job that pays for these bytes right now, if any (a read: nothing is claimed)."""
        item = self._call(
            "get_item", Key={TABLE_PARTITION_KEY: {"S": content_pk(content_hash)}}, ConsistentRead=True
        ).get("Item")
        return str(deserialize(item["job_id"])) if item and "job_id" in item else None

    def take_over_content(self, content_hash: str, job_id: str, from_owner: str, now: float) -> bool:
        """The owner of these bytes ended without a result anyone can copy: this job pays instead."""
        return self._conditional(
            content_pk(content_hash),
            {"job_id": job_id, "updated_at": now},
            condition="#job_id = :c_owner",
            values={":c_owner": from_owner},
        )
