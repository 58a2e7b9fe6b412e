"""The spend guard's records in the job table: what each UTC day and month has reserved, and by whom.

``spend#day#<YYYY-MM-DD>`` and ``spend#month#<YYYY-MM>`` count reserved micro-dollars (integers,
so no sum ever drifts); ``spend#hold#<job_id>#<attempt>`` is one POST's reservation, which makes
reserving and giving back exactly-once per attempt; ``versions#<bucket>/<key>#<day>`` holds the
versions of one key seen in a UTC day (the loop guard). Reserving is ONE TransactWriteItems: the
counters' conditions and the hold's creation succeed together or not at all, so concurrent
submissions are serialised by DynamoDB itself and none can pass the budget by even one image.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from cutouts.constants import TABLE_PARTITION_KEY, TABLE_TTL_ATTRIBUTE
from cutouts.job_record import JobStoreError, TableAccess, deserialize, error_code

SPEND_TTL_SECONDS = 40 * 86_400  # a month's counters outlive the month, for status and audits
CONFLICT_RETRIES = 12  # DynamoDB cancels a transaction that races another on the same item: try again


def day_pk(day: str) -> str:
    return f"spend#day#{day}"


def month_pk(month: str) -> str:
    return f"spend#month#{month}"


LIMITS_PK = "spend#limits"  # the budgets the functions run with, for the CLI (which cannot read their settings)


def hold_pk(job_id: str, attempt: int) -> str:
    return f"spend#hold#{job_id}#{attempt}"


def versions_pk(bucket: str, key: str, day: str) -> str:
    return f"versions#{bucket}/{key}#{day}"


class Reserved(StrEnum):
    """What a reservation came to."""

    RESERVED = "reserved"
    ALREADY = "already-reserved"  # this attempt holds a reservation already (a repeated call)
    DAILY_BUDGET = "daily-budget"  # the UTC day's budget has no room for one more image
    MONTHLY_BUDGET = "monthly-budget"


class Limits(NamedTuple):
    """Micro-dollars: what one image costs and what the periods may spend (None: no limit)."""

    price: int
    daily: int | None
    monthly: int | None


class Period(NamedTuple):
    spent: int = 0  # micro-dollars reserved and not given back
    budget: int | None = None  # as the last reservation saw it (the CLI cannot read the functions' settings)
    price: int | None = None


class SpendRecords(TableAccess):
    _sleep: Callable[[float], None] = staticmethod(time.sleep)

    def reserve_spend(self, job_id: str, attempt: int, day: str, month: str, limits: Limits, now: float) -> Reserved:
        """Reserve one image's price against the day (and month), once for this job's attempt."""
        if limits.daily is not None and limits.daily < limits.price:
            return Reserved.DAILY_BUDGET
        if limits.monthly is not None and limits.monthly < limits.price:
            return Reserved.MONTHLY_BUDGET
        expires = int(now) + SPEND_TTL_SECONDS
        items: list[dict[str, Any]] = []
        periods: list[Reserved] = []
        for pk, limit, refusal in (
            (day_pk(day), limits.daily, Reserved.DAILY_BUDGET),
            (month_pk(month), limits.monthly, Reserved.MONTHLY_BUDGET),
        ):
            if limit is None and refusal is Reserved.MONTHLY_BUDGET:
                continue  # no monthly budget: the month is not counted (one write fewer per POST)
            items.append({"Update": self._counter_update(pk, limits.price, limit, now, expires)})
            periods.append(refusal)
        hold = {
            TABLE_PARTITION_KEY: {"S": hold_pk(job_id, attempt)},
            "job_id": {"S": job_id},
            "attempt": {"N": str(attempt)},
            "micros": {"N": str(limits.price)},
            "day": {"S": day},
            "month": {"S": month},
            "reserved_at": {"N": repr(round(now, 3))},
            "counts_month": {"BOOL": limits.monthly is not None},
            TABLE_TTL_ATTRIBUTE: {"N": str(expires)},
        }
        items.append(
            {
                "Put": {
                    "TableName": self._table,
                    "Item": hold,
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": TABLE_PARTITION_KEY},
                }
            }
        )
        reasons = self._transact(items)
        if reasons is None:
            return Reserved.RESERVED
        if reasons[-1] == "ConditionalCheckFailed":
            return Reserved.ALREADY
        for refusal, code in zip(periods, reasons, strict=False):
            if code == "ConditionalCheckFailed":
                return refusal
        raise JobStoreError(f"DynamoDB cancelled the reservation: {reasons}")

    def release_spend(self, job_id: str, attempt: int, now: float) -> bool:
        """Give back this attempt's reservation; True only the one time it is given back."""
        item = self._call("get_item", Key={TABLE_PARTITION_KEY: {"S": hold_pk(job_id, attempt)}}, ConsistentRead=True)
        hold = {name: deserialize(attr) for name, attr in item.get("Item", {}).items()}
        if not hold or "released_at" in hold:
            return False
        micros = -int(hold["micros"])
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {TABLE_PARTITION_KEY: {"S": hold_pk(job_id, attempt)}},
                    "UpdateExpression": "SET #released = :now",
                    "ConditionExpression": "attribute_exists(#pk) AND attribute_not_exists(#released)",
                    "ExpressionAttributeNames": {"#pk": TABLE_PARTITION_KEY, "#released": "released_at"},
                    "ExpressionAttributeValues": {":now": {"N": repr(round(now, 3))}},
                }
            },
            {"Update": self._counter_update(day_pk(str(hold["day"])), micros, None, now, None)},
        ]
        if hold.get("counts_month"):
            items.append({"Update": self._counter_update(month_pk(str(hold["month"])), micros, None, now, None)})
        reasons = self._transact(items)
        if reasons is None:
            return True
        if reasons[0] == "ConditionalCheckFailed":
            return False  # given back meanwhile by another caller
        raise JobStoreError(f"DynamoDB cancelled the release: {reasons}")

    def spend_of(self, day: str, month: str) -> tuple[Period, Period]:
        """What the day and the month have reserved (strongly consistent)."""
        return self._period(day_pk(day)), self._period(month_pk(month))

    def note_version(self, bucket: str, key: str, day: str, job_id: str, most: int, now: float) -> int | None:
        """Count this version of the key in the UTC day; its place in the day, or None past ``most``.

        The set of job ids makes a repeated event count once. It stops growing at ``most + 1``
        (so a loop cannot grow the item without end): a version that no longer fits is past it.
        A repeated event of a version already counted returns the set's size (over ``most`` only
        if the loop had tripped by then, which is as close as a set can tell).
        """
        names = {"#v": "versions", "#e": TABLE_TTL_ATTRIBUTE}
        values = {
            ":id": {"SS": [job_id]},
            ":one": {"S": job_id},
            ":room": {"N": str(most)},
            ":exp": {"N": str(int(now) + 3 * 86_400)},
        }
        try:
            reply = self._ddb.update_item(
                TableName=self._table,
                Key={TABLE_PARTITION_KEY: {"S": versions_pk(bucket, key, day)}},
                UpdateExpression="ADD #v :id SET #e = if_not_exists(#e, :exp)",
                ConditionExpression="attribute_not_exists(#v) OR contains(#v, :one) OR size(#v) <= :room",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise JobStoreError(f"DynamoDB update failed: {error_code(exc)}") from exc
        return len(reply.get("Attributes", {}).get("versions", {}).get("SS", [])) or 1

    def note_budget_reached(self, period: str, period_start: str, now: float) -> bool:
        """True for the first caller to find this period's budget spent (its Budget Reached event is sent once)."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    TABLE_PARTITION_KEY: {"S": f"spend#reached#{period}#{period_start}"},
                    "reached_at": {"N": repr(round(now, 3))},
                    TABLE_TTL_ATTRIBUTE: {"N": str(int(now) + SPEND_TTL_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise JobStoreError(f"DynamoDB put failed: {error_code(exc)}") from exc
        return True

    def record_limits(self, limits: Limits, now: float) -> bool:
        """Write the functions' budgets where the CLI reads them, when they differ from what is there."""
        if self.recorded_limits() == limits:
            return False
        item = {
            TABLE_PARTITION_KEY: {"S": LIMITS_PK},
            "price_micros": {"N": str(limits.price)},
            "updated_at": {"N": repr(round(now, 3))},
        }
        for name, value in (("daily_micros", limits.daily), ("monthly_micros", limits.monthly)):
            if value is not None:
                item[name] = {"N": str(value)}
        self._call("put_item", Item=item)
        return True

    def recorded_limits(self) -> Limits | None:
        item = self._call("get_item", Key={TABLE_PARTITION_KEY: {"S": LIMITS_PK}}).get("Item")
        if not item:
            return None
        values = {name: deserialize(attr) for name, attr in item.items()}

        def number(name: str) -> int | None:
            return None if values.get(name) is None else int(values[name])

        return Limits(int(values["price_micros"]), number("daily_micros"), number("monthly_micros"))

    # --- plumbing --------------------------------------------------------------------------

    def _counter_update(
        self, pk: str, micros: int, limit: int | None, now: float, expires: int | None
    ) -> dict[str, Any]:
        names = {"#spent": "spent_micros", "#updated": "updated_at"}
        values: dict[str, Any] = {":micros": {"N": str(micros)}, ":now": {"N": repr(round(now, 3))}}
        sets = ["#updated = :now"]
        if micros > 0:
            names["#price"] = "price_micros"
            values[":price"] = {"N": str(micros)}
            sets.append("#price = :price")
        if expires is not None:
            names["#exp"], values[":exp"] = TABLE_TTL_ATTRIBUTE, {"N": str(expires)}
            sets.append("#exp = if_not_exists(#exp, :exp)")
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": {TABLE_PARTITION_KEY: {"S": pk}},
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if limit is not None:
            names["#budget"] = "budget_micros"
            values[":budget"] = {"N": str(limit)}
            values[":room"] = {"N": str(limit - micros)}  # spent + price <= limit
            sets.append("#budget = :budget")
            update["ConditionExpression"] = "attribute_not_exists(#spent) OR #spent <= :room"
        update["UpdateExpression"] = f"ADD #spent :micros SET {', '.join(sets)}"
        return update

    def _transact(self, items: list[dict[str, Any]]) -> list[str] | None:
        """Write the items as one transaction; None, or each item's cancellation code if a condition failed."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                self._ddb.transact_write_items(TransactItems=items)
                return None
            except ClientError as exc:
                code = error_code(exc)
                if code != "TransactionCanceledException":
                    raise JobStoreError(f"DynamoDB transact_write_items failed: {code}") from exc
                reasons = [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return reasons
                if not reasons or any(r not in ("None", "TransactionConflict") for r in reasons):
                    raise JobStoreError(f"DynamoDB cancelled the transaction: {reasons or exc}") from exc
            self._sleep(random.uniform(0.01, 0.05) * min(2**attempt, 32))  # noqa: S311 (jitter, not secrecy)
        raise JobStoreError("DynamoDB kept cancelling the transaction for conflicts")

    def _period(self, pk: str) -> Period:
        item = self._call("get_item", Key={TABLE_PARTITION_KEY: {"S": pk}}, ConsistentRead=True).get("Item")
        if not item:
            return Period()
        values: Mapping[str, Any] = {name: deserialize(attr) for name, attr in item.items()}
        budget, price = values.get("budget_micros"), values.get("price_micros")
        return Period(
            int(values.get("spent_micros") or 0),
            None if budget is None else int(budget),
            None if price is None else int(price),
        )
