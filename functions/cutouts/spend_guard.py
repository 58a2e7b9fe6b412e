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


def _next_period_start(now: float, period: str) -> float:
    start = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
        following = (
            start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        )
        return following.timestamp()
    return start.timestamp() + 86_400


def announce_parked(job: Job, services: Services, now: float, refusal: Reserved) -> None:
    """Tell other systems a job is parked, and, the first time in the period, that the budget is reached.

    Called once per park (the park transition is conditional); the Budget Reached event once per
    period (a conditional record). Neither may block the job: failures are counted and alarmed.
    """
    announcer = services.events
    if announcer is None:
        return
    from cutouts.job_events import budget_reached, cutout_parked

    period = "month" if refusal is Reserved.MONTHLY_BUDGET else "day"
    limits = limits_of(services.settings)
    try:
        day, month = spend_now(services, now)
        spent = month.spent if period == "month" else day.spent
        budget = (limits.monthly if period == "month" else limits.daily) or 0
        period_start = utc_month(now) if period == "month" else utc_day(now)
        entries = [
            cutout_parked(
                job,
                reason=str(refusal),
                period=period,
                budget_usd=usd(budget),
                spent_usd=usd(spent),
                resumes_at=_next_period_start(now, period),
                parked_at=now,
            )
        ]
        if services.store.note_budget_reached(period, period_start, now):
            entries.append(
                budget_reached(
                    period=period,
                    period_start=period_start,
                    budget_usd=usd(budget),
                    spent_usd=usd(spent),
                    reached_at=now,
                )
            )
    except Exception:  # noqa: BLE001  (the job is parked safely; only its announcement is lost)
        services.metrics.count(c.METRIC_EVENTS_FAILED)
        return
    announcer.send_once(entries)


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
