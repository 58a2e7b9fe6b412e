"""The spend guard: no POST leaves unless its price fits in the UTC day's (and month's) budget.

Every POST is paid for in advance: ``reserve`` adds one image's price to the day's (and the
month's) counter in the same DynamoDB transaction that checks the budget, so however many
functions submit at once, the reservations never pass the budget, not even by one image. What was
not charged is given back (``give_back``) exactly once per attempt: a refused POST (429, 5xx,
connection refused, a 4xx) or an ``ERROR`` the gateway does not bill. A POST whose answer never
came (in doubt) keeps its reservation: it may have been billed. At the budget a job is parked
(``submission.park``), and the reconciler sends parked jobs on, oldest first, as budget opens.

Money is counted in integer micro-dollars, so no sum of prices drifts. ``now`` is the caller's
clock (the tests control it); days and months are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cutouts import constants as c
from cutouts.job_record import Job
from cutouts.services import Services
from cutouts.settings import Settings
from cutouts.spend_records import Limits, Period, Reserved

MICROS = 1_000_000
BUDGET_REASONS = (Reserved.DAILY_BUDGET, Reserved.MONTHLY_BUDGET)


def micros(usd: float) -> int:
    return round(usd * MICROS)


def usd(amount: int) -> float:
    return amount / MICROS


def utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def utc_month(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def limits_of(settings: Settings) -> Limits:
    """The settings' budgets in micro-dollars (a monthly budget of 0 means none)."""
    monthly = settings.monthly_budget_usd
    return Limits(
        price=max(1, micros(settings.price_per_image_usd)),
        daily=micros(settings.daily_budget_usd),
        monthly=micros(monthly) if monthly > 0 else None,
    )


def reserve(job: Job, services: Services, now: float) -> Reserved:
    """Reserve one image's price for this attempt of the job, or say which budget has no room."""
    return services.store.reserve_spend(
        job.job_id, job.attempt, utc_day(now), utc_month(now), limits_of(services.settings), now
    )


def give_back(job_id: str, attempt: int, services: Services, now: float) -> bool:
    """The POST of this attempt was not charged: return its reservation (once, whoever asks twice)."""
    return services.store.release_spend(job_id, attempt, now)


def parked_because(refusal: Reserved) -> str:
    """The job record's words for why it waits."""
    if refusal is Reserved.MONTHLY_BUDGET:
        return "the month's budget (monthlyBudgetUsd) is spent: it resumes when the next UTC month opens"
    return "the day's budget (dailyBudgetUsd) is spent: it resumes when the next UTC day opens"


def spend_now(services: Services, now: float) -> tuple[Period, Period]:
    return services.store.spend_of(utc_day(now), utc_month(now))


def images_left(services: Services, now: float) -> int:
    """How many POSTs the day's and month's budgets still allow (as read now; the reservation decides)."""
    limits = limits_of(services.settings)
    day, month = spend_now(services, now)
    room = [(limits.daily or 0) - day.spent]
    if limits.monthly is not None:
        room.append(limits.monthly - month.spent)
    return max(0, min(room) // limits.price)


def report_spend(services: Services, now: float) -> tuple[Period, Period]:
    """Put the day's and month's spend on the metrics (the reconciler, every pass): the 80 % alarm reads it.

    The budgets are recorded in the table as well (when they change), for the CLI's status and backfill.
    """
    services.store.record_limits(limits_of(services.settings), now)
    day, month = spend_now(services, now)
    services.metrics.count(c.METRIC_SPEND_TODAY_USD, usd(day.spent))
    services.metrics.count(c.METRIC_SPEND_MONTH_USD, usd(month.spent))
    return day, month


def upload_loop(job: Job, services: Services, now: float) -> str | None:
    """Why this version is not submitted today (one key uploaded too often: a loop), or None."""
    most = services.settings.max_versions_per_key_per_day
    place = services.store.note_version(job.bucket, job.key, utc_day(now), job.job_id, most, now)
    if place is not None and place <= most:
        return None
    return (
        f"{job.key} was uploaded more than {most} times in the UTC day {utc_day(now)} "
        f"(maxVersionsPerKeyPerDay): that is the signature of a loop, so its uploads are not "
        "submitted again until the next UTC day"
    )
