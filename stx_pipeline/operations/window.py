"""Day windows: which UTC days a command targets, and how to print sets of days compactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping


class WindowError(ValueError):
    """The requested window makes no sense (negative days, dates out of range)."""


def last_complete_day(now: dt.datetime | None = None) -> dt.date:
    """Yesterday in UTC: the newest partition (end_offset=0 means only complete days exist)."""
    current = now or dt.datetime.now(dt.UTC)
    return current.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def target_window(
    *,
    days: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    first_partition: dt.date,
    now: dt.datetime | None = None,
    option: str = "--days",
    clamp: bool = False,
) -> list[dt.date]:
    """The days of `--days N` (ending yesterday) or of `--start/--end` (inclusive), validated.

    The one validation of `backfill` and `status` windows. A window reaching back before the first partition
    (STX_START_DATE) is refused, naming the most days that fit: `--days 100000` is a typo far more often than
    "everything", and "everything" is `--start STX_START_DATE`. `clamp=True` is for a size that comes from
    configuration (STX_TARGET_DAYS, as the top-up sensor also clamps it), not from the user's option.
    """
    newest = last_complete_day(now)
    if days is not None:
        if start is not None:
            raise WindowError("give either --days or --start/--end, not both")
        if days <= 0:
            raise WindowError(f"{option} must be a positive number of days, got {days}")
        most = (newest - first_partition).days + 1
        if days > most and not clamp:
            raise WindowError(
                f"{option} {days} reaches back before the first partition {first_partition} (STX_START_DATE): "
                f"at most {most} days fit ({option} {most}"
                + (f", or --start {first_partition} for all of them)" if option == "--days" else ")")
            )
        end = newest
        start = max(first_partition, newest - dt.timedelta(days=min(days, most) - 1))
    if start is None:
        raise WindowError("give --days N or --start DATE (and optionally --end DATE)")
    end = end or newest
    if start < first_partition:
        raise WindowError(f"{start} is before the first partition {first_partition} (STX_START_DATE)")
    if end > newest:
        raise WindowError(f"{end} is not a complete UTC day yet; the newest partition is {newest}")
    if end < start:
        raise WindowError(f"the window ends ({end}) before it starts ({start})")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def compact_ranges(days: Iterable[dt.date]) -> list[str]:
    """[2025-03-01, 2025-03-02, 2025-03-03, 2025-03-07] -> ['2025-03-01..2025-03-03', '2025-03-07']."""
    ordered = sorted(set(days))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] - ordered[j] == dt.timedelta(days=1):
            j += 1
        out.append(ordered[i].isoformat() if i == j else f"{ordered[i]}..{ordered[j]}")
        i = j + 1
    return out


def contiguous_runs(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days grouped as (first, last) pairs: one backfill range per pair."""
    ordered = sorted(set(days))
    runs: list[tuple[dt.date, dt.date]] = []
    for day in ordered:
        if runs and day - runs[-1][1] == dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def expand_status_ranges(ranges: Iterable[Mapping[str, str]]) -> dict[dt.date, str]:
    """GraphQL's TimePartitionStatuses ranges -> one status per day (MATERIALIZED, FAILED, MATERIALIZING)."""
    statuses: dict[dt.date, str] = {}
    for r in ranges:
        first, last = dt.date.fromisoformat(r["startKey"]), dt.date.fromisoformat(r["endKey"])
        for i in range((last - first).days + 1):
            statuses[first + dt.timedelta(days=i)] = r["status"]
    return statuses
