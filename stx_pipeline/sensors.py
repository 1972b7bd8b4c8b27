"""The daily top-up: yesterday once it is final, every gap in the target window, and a late re-fetch.

Dagster's built-in automation conditions only ever request the latest time partition; this sensor
compares the days wanted with the instance's partition statuses, so it fills gaps too.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from stx_pipeline.assets.transactions import ASSET_KEY, stx_transactions
from stx_pipeline.operations.window import contiguous_runs
from stx_pipeline.partitions import daily_partitions, day_statuses
from stx_pipeline.settings import Settings

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class TopupPolicy(dg.ConfigurableResource):
    """When the top-up considers a day final and how far back it fills gaps."""

    delay_hours: float = Field(default=2.0, description="A UTC day is final this long after midnight")
    target_days: int = Field(default=180, description="Gaps are filled in this many days ending yesterday")
    days_per_run: int = Field(default=5, description="Consecutive missing days grouped into one run")
    fixed_now: str | None = Field(
        default=None, description="Evaluate as if at this ISO time (tests and replays); default: the clock"
    )

    def now(self) -> dt.datetime:
        if self.fixed_now:
            return dt.datetime.fromisoformat(self.fixed_now).astimezone(dt.UTC)
        return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class TopupRequest:
    reason: str  # final | missing | failed | refetch
    first: dt.date
    last: dt.date

    @property
    def run_key(self) -> str:
        span = self.first.isoformat() if self.first == self.last else f"{self.first}..{self.last}"
        return f"{self.reason}:{span}"


def plan_topup(
    now: dt.datetime,
    statuses: dict[dt.date, str | None],
    *,
    delay_hours: float,
    target_days: int,
    days_per_run: int,
    first_partition: dt.date,
) -> list[TopupRequest]:
    """Pure decision: which days to request now, and why. `statuses`: MATERIALIZED / FAILED / IN_PROGRESS / None."""
    today = now.date()
    final_cutoff = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC) + dt.timedelta(hours=delay_hours)
    yesterday = today - dt.timedelta(days=1)
    # Before the delay, yesterday is not final: it is neither requested nor counted as a gap.
    newest_final = yesterday if now >= final_cutoff else yesterday - dt.timedelta(days=1)
    oldest = max(first_partition, yesterday - dt.timedelta(days=target_days - 1))
    window = [oldest + dt.timedelta(days=i) for i in range((newest_final - oldest).days + 1)]

    requests: list[TopupRequest] = []
    if newest_final == yesterday and statuses.get(yesterday) is None and yesterday >= first_partition:
        requests.append(TopupRequest("final", yesterday, yesterday))
    missing = [d for d in window if statuses.get(d) is None and d != yesterday]
    for first, last in contiguous_runs(missing):
        while first <= last:
            chunk_end = min(last, first + dt.timedelta(days=days_per_run - 1))
            requests.append(TopupRequest("missing", first, chunk_end))
            first = chunk_end + dt.timedelta(days=1)
    # A failed day is retried at most once a day: the date is part of the reason.
    for day in window:
        if statuses.get(day) == "FAILED":
            requests.append(TopupRequest(f"failed@{today}", day, day))
    before_yesterday = yesterday - dt.timedelta(days=1)
    if now >= final_cutoff and statuses.get(before_yesterday) == "MATERIALIZED":
        requests.append(TopupRequest("refetch", before_yesterday, before_yesterday))
    return requests


def _default_status() -> dg.DefaultSensorStatus:
    off = os.environ.get("STX_DAILY_TOPUP", "on").strip().lower() in ("off", "false", "0", "no")
    return dg.DefaultSensorStatus.STOPPED if off else dg.DefaultSensorStatus.RUNNING


@dg.sensor(
    name="daily_topup",
    target=[stx_transactions],
    minimum_interval_seconds=15 * 60,  # at least hourly, with room for a slow tick
    default_status=_default_status(),
    description="Requests yesterday once final, any missing or failed day in the target window, and a re-fetch "
    "of the day before yesterday once a day.",
)
def daily_topup(context: dg.SensorEvaluationContext, topup: TopupPolicy) -> dg.SensorResult:
    now = topup.now()
    first_partition = dt.date.fromisoformat(daily_partitions.start.strftime("%Y-%m-%d"))
    yesterday = now.date() - dt.timedelta(days=1)
    oldest = max(first_partition, yesterday - dt.timedelta(days=topup.target_days - 1))
    days = [oldest + dt.timedelta(days=i) for i in range((yesterday - oldest).days + 1)]
    statuses = day_statuses(context.instance, ASSET_KEY, days) if days else {}
    planned = plan_topup(
        now,
        statuses,
        delay_hours=topup.delay_hours,
        target_days=topup.target_days,
        days_per_run=topup.days_per_run,
        first_partition=first_partition,
    )
    run_requests = [
        dg.RunRequest(
            run_key=request.run_key,
            asset_selection=[ASSET_KEY],
            tags={
                RANGE_START_TAG: request.first.isoformat(),
                RANGE_END_TAG: request.last.isoformat(),
                "stx-pipeline/topup-reason": request.reason.split("@")[0],
            },
        )
        for request in planned
    ]
    if not run_requests:
        return dg.SensorResult(skip_reason=f"Nothing to top up at {now:%Y-%m-%d %H:%M} UTC: the window is complete.")
    return dg.SensorResult(run_requests=run_requests)


def topup_policy_from_env(settings: Settings) -> TopupPolicy:
    return TopupPolicy(
        delay_hours=settings.topup_delay_hours,
        target_days=settings.target_days,
        days_per_run=settings.days_per_run,
    )
