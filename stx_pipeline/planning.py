"""Which days of a window need fetching, from both sources, and how long fetching them takes.

A day is stored only when the instance says MATERIALIZED *and* DuckDB holds rows for it: the instance alone
misses a deleted or replaced database file, DuckDB alone misses a day still being written or a run that failed
after a partial write. No Dagster import here: `status` and the CLI's planning stay fast.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stx_pipeline.storage import NothingStoredError, day_counts
from stx_pipeline.storage.backend import Storage, as_storage

MATERIALIZED = "MATERIALIZED"
FAILED = "FAILED"
IN_PROGRESS = "IN_PROGRESS"
MISSING = "MISSING"

# GraphQL says MATERIALIZING where the Python API says IN_PROGRESS.
_ALIASES = {"MATERIALIZING": IN_PROGRESS}

# A mainnet-like day of ~5,000 transactions: 105 v1 pages on average (docs/BACKFILL.md, "How long it takes");
# v3 measured 101-109 requests for such days (docs/API_STRATEGIES.md, "Requests per day").
MAINNET_REQUESTS_PER_DAY = 105
PAGE_SIZE = 50


def with_pending(statuses: Mapping[dt.date, str | None], pending: Iterable[dt.date]) -> dict[dt.date, str | None]:
    """Statuses where a day never attempted but targeted by an unfinished backfill counts as in progress: the
    backfill daemon creates runs a few at a time, and until then the instance knows nothing of those days."""
    merged = dict(statuses)
    for day in pending:
        if merged.get(day) is None:
            merged[day] = IN_PROGRESS
    return merged


def normalise(status: str | None) -> str:
    if status is None:
        return MISSING
    return _ALIASES.get(status, status)


@dataclass(frozen=True)
class DayPlan:
    window: list[dt.date]
    statuses: dict[dt.date, str]  # per day: MATERIALIZED (in both) / FAILED / IN_PROGRESS / MISSING
    stored_rows: dict[dt.date, int]
    requested: list[dt.date]
    in_progress: list[dt.date]
    lost: list[dt.date]  # materialized in the instance, no rows in DuckDB: requested again
    dead_runs: list[str] = field(default_factory=list)  # runs whose process was gone, marked failed before planning

    def days_with(self, status: str) -> list[dt.date]:
        return [d for d in self.window if self.statuses[d] == status]

    @property
    def stored(self) -> list[dt.date]:
        return self.days_with(MATERIALIZED)


def read_stored_rows(
    db_path: Storage | str | Path, days: Iterable[dt.date], timeout_s: float | None = None
) -> dict[dt.date, int]:
    """Rows per day in DuckDB (one grouped query over the window, read-only); 0 for every day when nothing was
    ingested yet. Raises StorageError when the history cannot be read (not a database, a directory, locked for
    longer than `timeout_s`): an unreadable path must never pass for "stored"."""
    wanted = list(days)
    try:
        with as_storage(db_path).read_connection(timeout_s) as conn:
            return day_counts(conn, wanted)
    except NothingStoredError:
        return dict.fromkeys(wanted, 0)


def plan_days(
    window: list[dt.date],
    statuses: Mapping[dt.date, str | None],
    stored_rows: Mapping[dt.date, int],
    *,
    force: bool = False,
    pending: Iterable[dt.date] = (),
) -> DayPlan:
    """Days to request: missing or failed in the instance, or materialized there but absent from DuckDB
    (a deleted or replaced database file, lost rows). Days being materialized right now are left to their run,
    as are days an unfinished backfill targets (`pending`) and has not attempted yet."""
    per_day = {d: normalise(statuses.get(d)) for d in window}
    lost = [d for d in window if per_day[d] == MATERIALIZED and stored_rows.get(d, 0) == 0]
    for day in lost:
        per_day[day] = MISSING
    for day in set(pending) & set(window):
        if per_day[day] == MISSING:
            per_day[day] = IN_PROGRESS
    in_progress = [d for d in window if per_day[d] == IN_PROGRESS]
    if force:
        requested = [d for d in window if per_day[d] != IN_PROGRESS]
    else:
        requested = [d for d in window if per_day[d] in (MISSING, FAILED)]
    return DayPlan(
        window=window,
        statuses=per_day,
        stored_rows=dict(stored_rows),
        requested=requested,
        in_progress=in_progress,
        lost=lost,
    )


# -- how long ------------------------------------------------------------------------------------


def _duration(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"~{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"~{minutes / 60:.1f} h"
    return f"~{minutes / 1440:.1f} days"


@dataclass(frozen=True)
class FetchEstimate:
    """Days x requests per day / requests per minute: the pacing floor, which dominates without a key."""

    days: int
    requests_per_day: int
    requests_per_minute: float  # 0: no pacing (the simulator)
    keyed: bool
    per_day_source: str  # where requests_per_day came from

    @property
    def requests(self) -> int:
        return self.days * self.requests_per_day

    @property
    def minutes(self) -> float | None:
        return self.requests / self.requests_per_minute if self.requests_per_minute > 0 else None

    def describe(self) -> str:
        text = (
            f"{self.days} days, about {self.requests:,} requests ({self.requests_per_day}/day, {self.per_day_source})"
        )
        if self.minutes is None:
            return f"{text}: no request budget set (STX_REQUESTS_PER_MINUTE=0), as fast as the API answers"
        from stx_pipeline.hiro.client import DEFAULT_RPM_WITH_KEY

        budget = f"{self.requests_per_minute:g} requests/min"
        key = "" if self.keyed else f"; without HIRO_API_KEY (a key allows {DEFAULT_RPM_WITH_KEY}/min)"
        return f"{text}: {_duration(self.minutes)} at {budget}{key}"


def estimate_fetch(
    days: int,
    *,
    requests_per_minute: float | None,
    keyed: bool,
    stored_rows: Mapping[dt.date, int] | None = None,
) -> FetchEstimate:
    """How long fetching `days` days takes at the budget the runs use (HiroClient's defaults when unset).

    Requests per day: the v1 page count of the average stored day when some are stored (the chain being
    fetched), else the measured figure for a mainnet-like day.
    """
    from stx_pipeline.hiro.client import DEFAULT_RPM_WITH_KEY, DEFAULT_RPM_WITHOUT_KEY

    rpm = requests_per_minute
    if rpm is None:
        rpm = DEFAULT_RPM_WITH_KEY if keyed else DEFAULT_RPM_WITHOUT_KEY
    counts = [n for n in (stored_rows or {}).values() if n > 0]
    if counts:
        per_day = max(1, math.ceil(sum(counts) / len(counts) / PAGE_SIZE))
        source = f"from the {len(counts)} days stored"
    else:
        per_day = MAINNET_REQUESTS_PER_DAY
        source = "a ~5,000-tx mainnet day"
    return FetchEstimate(
        days=days, requests_per_day=per_day, requests_per_minute=rpm, keyed=keyed, per_day_source=source
    )
