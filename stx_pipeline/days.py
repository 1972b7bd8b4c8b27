"""UTC days: the one home of what a day is, how sets of days are grouped and printed, and how a run names them.

Every layer uses these: the API client (a day's bounds in unix seconds), storage (the same bounds as
timestamps), the asset and the sensor (a run's range tags), the CLI (compact printing). No Dagster and no
other stx_pipeline import here, so `hiro/` and `storage/` may depend on it; Dagster's tag names are plain strings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

# The asset's key (a single-part AssetKey) and what the CLI passes to GraphQL as its path.
ASSET_NAME = "stx_transactions"
ASSET_PATH = [ASSET_NAME]

# The tags of a run over a range of partitions: what `backfill_policy=multi_run` and a sensor's RunRequest set.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

ONE_DAY = dt.timedelta(days=1)


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC opening `day`."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a UTC day as aware datetimes: half-open, so the next day's first second is not this day's."""
    start = day_start(day)
    return start, start + ONE_DAY


def day_window(day: dt.date) -> tuple[int, int]:
    """[start, end) of a UTC day in unix seconds."""
    start, end = day_bounds(day)
    return int(start.timestamp()), int(end.timestamp())


def inclusive_end(end: int) -> int:
    """The last second of a half-open window ending at `end`: the v1 API's `end_time` (and the block-time lookup)
    are inclusive, so [start, end - 1] == [start, end)."""
    return end - 1


def last_complete_day(now: dt.datetime | None = None) -> dt.date:
    """Yesterday in UTC: the newest partition (end_offset=0 means only complete days exist)."""
    current = now or dt.datetime.now(dt.UTC)
    return current.astimezone(dt.UTC).date() - ONE_DAY


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from `first` to `last`, both included (empty when `last` is before `first`)."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def contiguous_runs(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days grouped as (first, last) pairs: one backfill range per pair."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][1] == ONE_DAY:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def compact_ranges(days: Iterable[dt.date]) -> list[str]:
    """[2025-03-01, 2025-03-02, 2025-03-03, 2025-03-07] -> ['2025-03-01..2025-03-03', '2025-03-07']."""
    return [first.isoformat() if first == last else f"{first}..{last}" for first, last in contiguous_runs(days)]


def chunk_runs(days: Iterable[dt.date], days_per_run: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days cut into (first, last) ranges of at most `days_per_run` days: one run each."""
    if days_per_run < 1:
        raise ValueError(f"days_per_run must be at least 1, got {days_per_run}")
    out: list[tuple[dt.date, dt.date]] = []
    for first, last in contiguous_runs(days):
        while first <= last:
            chunk_end = min(last, first + dt.timedelta(days=days_per_run - 1))
            out.append((first, chunk_end))
            first = chunk_end + ONE_DAY
    return out


def range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    """The tags that make one run cover the partitions `first`..`last` (both included)."""
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}
