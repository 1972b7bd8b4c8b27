"""stx_pipeline.days: the UTC day every layer shares (bounds, printing, run chunking, range tags)."""

from __future__ import annotations

import datetime as dt

import pytest

from stx_pipeline.days import (
    chunk_runs,
    compact_ranges,
    contiguous_runs,
    day_bounds,
    day_window,
    days_between,
    inclusive_end,
    last_complete_day,
    range_tags,
)

D = dt.date(2025, 3, 1)


def d(day: int) -> dt.date:
    return dt.date(2025, 3, day)


def test_a_day_is_half_open_in_utc_in_seconds_and_as_timestamps():
    assert day_window(D) == (1_740_787_200, 1_740_873_600)  # 2025-03-01T00:00Z, 2025-03-02T00:00Z
    start, end = day_bounds(D)
    assert (start.isoformat(), end.isoformat()) == ("2025-03-01T00:00:00+00:00", "2025-03-02T00:00:00+00:00")
    assert (int(start.timestamp()), int(end.timestamp())) == day_window(D)
    # The v1 API's end_time is inclusive: the day's last second, never the next day's first.
    assert inclusive_end(day_window(D)[1]) == 1_740_873_599


def test_the_last_complete_day_is_yesterday_in_utc_whatever_the_clock_s_zone():
    # 23:30 on 1 March in New York is already 2 March in UTC: 1 March is complete.
    new_york = dt.datetime(2025, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert last_complete_day(new_york) == d(1)
    assert last_complete_day(dt.datetime(2025, 3, 2, 0, 0, tzinfo=dt.UTC)) == d(1)


def test_sets_of_days_print_as_ranges_in_order_without_repeats():
    days = [d(7), d(1), d(2), d(3), d(2)]
    assert contiguous_runs(days) == [(d(1), d(3)), (d(7), d(7))]
    assert compact_ranges(days) == ["2025-03-01..2025-03-03", "2025-03-07"]
    assert compact_ranges([]) == []
    assert days_between(d(1), d(3)) == [d(1), d(2), d(3)]
    assert days_between(d(3), d(1)) == []


def test_runs_are_chunked_within_each_gapless_stretch():
    days = [*days_between(d(1), d(7)), d(10), d(11)]
    assert chunk_runs(days, 3) == [(d(1), d(3)), (d(4), d(6)), (d(7), d(7)), (d(10), d(11))]
    assert chunk_runs(days, 1)[:2] == [(d(1), d(1)), (d(2), d(2))]
    with pytest.raises(ValueError, match="days_per_run must be at least 1, got 0"):
        chunk_runs(days, 0)


def test_range_tags_are_dagster_s_partition_range_tags():
    assert range_tags(d(1), d(5)) == {
        "dagster/asset_partition_range_start": "2025-03-01",
        "dagster/asset_partition_range_end": "2025-03-05",
    }
