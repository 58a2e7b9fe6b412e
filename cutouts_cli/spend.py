"""The spend guard as an operator sees it: what today and this month have spent, against which budgets.

The budgets are the deployed functions' settings; the CLI cannot read those, so it reads what the
reconciler records in the table each pass (``spend#limits``), and the settings table's defaults
until the reconciler has run once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cutouts import settings_table as t
from cutouts.job_store import PARKED, JobStore
from cutouts.spend_guard import micros, usd, utc_day, utc_month
from cutouts.spend_records import Limits


@dataclass
class SpendFigures:
    day: str
    month: str
    spent_today_usd: float
    daily_budget_usd: float | None
    spent_month_usd: float
    monthly_budget_usd: float | None
    price_per_image_usd: float
    images_left: int
    parked: int
    budgets_recorded: bool  # False: the reconciler has not recorded the budgets yet; the defaults are shown

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The figures in words, as status and backfill print them."""
        note = "" if self.budgets_recorded else " (default budgets: the reconciler has not recorded them yet)"
        today = f"Spend today ({self.day} UTC): ${self.spent_today_usd:.2f} of ${self.daily_budget_usd or 0:.2f}"
        month = f"this month ({self.month}): ${self.spent_month_usd:.2f}" + (
            f" of ${self.monthly_budget_usd:.2f}" if self.monthly_budget_usd is not None else " (no monthly budget)"
        )
        return [
            f"{today}; {month}{note}",
            f"Room for {self.images_left} more images at ${self.price_per_image_usd:g}; {self.parked} jobs parked"
            + (" (they resume when budget opens, or with: resume)" if self.parked else ""),
        ]


def default_limits() -> Limits:
    monthly = float(t.DEFAULTS["monthly_budget_usd"])
    return Limits(
        micros(t.DEFAULTS["price_per_image_usd"]),
        micros(t.DEFAULTS["daily_budget_usd"]),
        micros(monthly) if monthly > 0 else None,
    )


def collect_spend(store: JobStore, now: float) -> SpendFigures:
    recorded = store.recorded_limits()
    limits = recorded or default_limits()
    day, month = store.spend_of(utc_day(now), utc_month(now))
    room = [(limits.daily or 0) - day.spent]
    if limits.monthly is not None:
        room.append(limits.monthly - month.spent)
    return SpendFigures(
        day=utc_day(now),
        month=utc_month(now),
        spent_today_usd=usd(day.spent),
        daily_budget_usd=None if limits.daily is None else usd(limits.daily),
        spent_month_usd=usd(month.spent),
        monthly_budget_usd=None if limits.monthly is None else usd(limits.monthly),
        price_per_image_usd=usd(limits.price),
        images_left=max(0, min(room) // limits.price),
        parked=store.count_by_status(PARKED),
        budgets_recorded=recorded is not None,
    )
