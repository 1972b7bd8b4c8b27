"""Which UTC days a command targets (validated against STX_START_DATE), and GraphQL's status ranges as days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from stx_pipeline.days import days_between, last_complete_day


class WindowError(ValueError):
    """The requested window makes no sense (negative days, dates out of range)."""


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
    return days_between(start, end)


def expand_status_ranges(ranges: Iterable[Mapping[str, str]]) -> dict[dt.date, str]:
    """GraphQL's TimePartitionStatuses ranges -> one status per day (MATERIALIZED, FAILED, MATERIALIZING)."""
    statuses: dict[dt.date, str] = {}
    for r in ranges:
        first, last = dt.date.fromisoformat(r["startKey"]), dt.date.fromisoformat(r["endKey"])
        for i in range((last - first).days + 1):
            statuses[first + dt.timedelta(days=i)] = r["status"]
    return statuses
