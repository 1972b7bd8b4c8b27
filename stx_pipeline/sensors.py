"""The daily top-up: yesterday once it is final, every gap in the target window, and a late re-fetch.

Dagster's built-in automation conditions only ever request the latest time partition; this sensor
compares the days wanted with the instance's partition statuses and with the rows DuckDB holds (read-only),
so it fills gaps too, including days the instance calls materialized that are gone from the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from stx_pipeline.assets.transactions import ASSET_KEY
from stx_pipeline.days import chunk_runs, days_between, range_tags
from stx_pipeline.partitions import day_statuses, pending_backfill_days
from stx_pipeline.planning import estimate_fetch, read_stored_rows, with_pending
from stx_pipeline.resources import HiroApiResource, StorageResource
from stx_pipeline.settings import STACKS_MAINNET_START, Settings
from stx_pipeline.storage import StorageError
from stx_pipeline.storage.backend import Storage


class TopupPolicy(dg.ConfigurableResource):
    """When the top-up considers a day final and how far back it fills gaps."""

    delay_hours: float = Field(default=2.0, description="A UTC day is final this long after midnight")
    target_days: int = Field(default=180, description="Gaps are filled in this many days ending yesterday")
    days_per_run: int = Field(default=5, description="Consecutive missing days grouped into one run")
    start_date: str = Field(
        default=STACKS_MAINNET_START.isoformat(),
        description="STX_START_DATE: the first partition, never reached before",
    )
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
    statuses: Mapping[dt.date, str | None],
    *,
    delay_hours: float,
    target_days: int,
    days_per_run: int,
    first_partition: dt.date,
    stored_rows: Mapping[dt.date, int] | None = None,
) -> list[TopupRequest]:
    """Pure decision: which days to request now, and why. `statuses`: MATERIALIZED / FAILED / IN_PROGRESS / None.

    `stored_rows`: rows per day in DuckDB, or None when DuckDB could not be read this tick (then only the
    instance decides). A day the instance calls materialized but DuckDB does not hold (a deleted file, lost
    rows) is requested again, at most once a day like a failed one.
    """
    today = now.date()
    final_cutoff = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC) + dt.timedelta(hours=delay_hours)
    yesterday = today - dt.timedelta(days=1)
    # Before the delay, yesterday is not final: it is neither requested nor counted as a gap.
    newest_final = yesterday if now >= final_cutoff else yesterday - dt.timedelta(days=1)
    oldest = max(first_partition, yesterday - dt.timedelta(days=target_days - 1))
    window = days_between(oldest, newest_final)

    def chunks(reason: str, days: list[dt.date]) -> list[TopupRequest]:
        return [TopupRequest(reason, first, last) for first, last in chunk_runs(days, days_per_run)]

    requests: list[TopupRequest] = []
    if newest_final == yesterday and statuses.get(yesterday) is None and yesterday >= first_partition:
        requests.append(TopupRequest("final", yesterday, yesterday))
    requests += chunks("missing", [d for d in window if statuses.get(d) is None and d != yesterday])
    lost: list[dt.date] = []
    if stored_rows is not None:
        lost = [d for d in window if statuses.get(d) == "MATERIALIZED" and stored_rows.get(d, 0) == 0]
        # The date is part of the reason: a new run key each day (a run key is launched once), not every tick.
        requests += chunks(f"lost@{today}", lost)
    # A failed day is retried at most once a day: the date is part of the reason.
    for day in window:
        if statuses.get(day) == "FAILED":
            requests.append(TopupRequest(f"failed@{today}", day, day))
    before_yesterday = yesterday - dt.timedelta(days=1)
    if now >= final_cutoff and statuses.get(before_yesterday) == "MATERIALIZED" and before_yesterday not in lost:
        requests.append(TopupRequest("refetch", before_yesterday, before_yesterday))
    return requests


# A tick must stay short: wait this long at most for a writer's lock, then decide from the instance alone.
DUCKDB_LOCK_WAIT_S = 5.0


def stored_rows_for_tick(storage: Storage, days: list[dt.date], log: Any) -> dict[dt.date, int] | None:
    """Rows per day, or None ("unknown this tick") when DuckDB cannot be read: a writer holding the lock longer
    than `timeout_s`, or an unusable path. Unknown is neither "missing" (a re-fetch of everything) nor "stored"."""
    try:
        return read_stored_rows(storage, days, timeout_s=DUCKDB_LOCK_WAIT_S)
    except StorageError as exc:
        log.warning(f"daily_topup: DuckDB not read this tick, deciding from the instance alone: {exc}")
        return None


def build_daily_topup(*, running: bool) -> dg.SensorDefinition:
    """The sensor, started with the code location when `running` (STX_DAILY_TOPUP), stopped otherwise."""

    @dg.sensor(
        name="daily_topup",
        target=dg.AssetSelection.assets(ASSET_KEY),
        minimum_interval_seconds=15 * 60,  # at least hourly, with room for a slow tick
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        description="Requests yesterday once final, any missing or failed day in the target window, any day "
        "materialized but absent from DuckDB, and a re-fetch of the day before yesterday once a day.",
    )
    def daily_topup(
        context: dg.SensorEvaluationContext, topup: TopupPolicy, storage: StorageResource, hiro: HiroApiResource
    ) -> dg.SensorResult:
        return _evaluate(context, topup, storage, hiro)

    return daily_topup


def _evaluate(
    context: dg.SensorEvaluationContext, topup: TopupPolicy, storage: StorageResource, hiro: HiroApiResource
) -> dg.SensorResult:
    now = topup.now()
    first_partition = dt.date.fromisoformat(topup.start_date)
    yesterday = now.date() - dt.timedelta(days=1)
    oldest = max(first_partition, yesterday - dt.timedelta(days=topup.target_days - 1))
    days = days_between(oldest, yesterday)
    # A day an unfinished backfill targets is taken even before its run exists: not requested twice.
    statuses = (
        with_pending(
            day_statuses(context.instance, ASSET_KEY, days, first_partition),
            pending_backfill_days(context.instance, ASSET_KEY),
        )
        if days
        else {}
    )
    stored = stored_rows_for_tick(storage.backend(), days, context.log) if days else {}
    planned = plan_topup(
        now,
        statuses,
        delay_hours=topup.delay_hours,
        target_days=topup.target_days,
        days_per_run=topup.days_per_run,
        first_partition=first_partition,
        stored_rows=stored,
    )
    run_requests = [
        dg.RunRequest(
            run_key=request.run_key,
            asset_selection=[ASSET_KEY],
            tags={
                **range_tags(request.first, request.last),
                "stx-pipeline/topup-reason": request.reason.split("@")[0],
            },
        )
        for request in planned
    ]
    if not run_requests:
        if stored is None:
            return dg.SensorResult(
                skip_reason=f"Nothing requested at {now:%Y-%m-%d %H:%M} UTC from the instance's statuses, but DuckDB "
                "could not be read (see the tick's log): days missing from it are checked again next tick."
            )
        return dg.SensorResult(skip_reason=f"Nothing to top up at {now:%Y-%m-%d %H:%M} UTC: the window is complete.")
    return dg.SensorResult(run_requests=run_requests, cursor=_announce(context, planned, stored, hiro))


def _announce(
    context: dg.SensorEvaluationContext,
    planned: list[TopupRequest],
    stored: Mapping[dt.date, int] | None,
    hiro: HiroApiResource,
) -> str:
    """Log how many days this tick requests and how long they take at the budget, once per new set of requests
    (the first tick after `make up` may ask for the whole STX_TARGET_DAYS window). The cursor remembers the set:
    the same run keys come back every tick until their runs exist, and need no second announcement."""
    keys = sorted(request.run_key for request in planned)
    fingerprint = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    if context.cursor != fingerprint:
        n_days = sum((request.last - request.first).days + 1 for request in planned)
        estimate = estimate_fetch(
            n_days, requests_per_minute=hiro.requests_per_minute, keyed=bool(hiro.api_key), stored_rows=stored
        )
        reasons = sorted({request.reason.split("@")[0] for request in planned})
        context.log.info(
            f"daily_topup requests {n_days} days in {len(planned)} runs ({', '.join(reasons)}): "
            f"{estimate.describe()}. Runs already launched for the same days are not launched again."
        )
    return fingerprint


def topup_policy_from_env(settings: Settings) -> TopupPolicy:
    return TopupPolicy(
        delay_hours=settings.topup_delay_hours,
        target_days=settings.target_days,
        days_per_run=settings.days_per_run,
        start_date=settings.start_date.isoformat(),
    )
