"""The daily_topup sensor at fixed evaluation times, on a real (temporary) instance."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from stx_pipeline.assets.transactions import ASSET_KEY
from stx_pipeline.sensors import TopupPolicy, daily_topup, plan_topup

FIRST = dt.date(2024, 11, 1)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def materialize_days(instance: dg.DagsterInstance, days: list[dt.date]) -> None:
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=ASSET_KEY, partition=day.isoformat()))


def tick(instance: dg.DagsterInstance, now: str, target_days: int = 5) -> list[dg.RunRequest]:
    context = dg.build_sensor_context(
        instance=instance,
        resources={"topup": TopupPolicy(delay_hours=2, target_days=target_days, days_per_run=3, fixed_now=now)},
    )
    result = daily_topup(context)
    return list(result.run_requests or [])


def spans(requests: list[dg.RunRequest]) -> list[str]:
    return [r.run_key for r in requests]


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def test_before_the_delay_yesterday_is_not_requested(instance):
    materialize_days(instance, [dt.date(2025, 3, d) for d in range(5, 10)])  # 03-05 .. 03-09 stored
    # 2025-03-11 01:00: yesterday (03-10) is not final yet; 03-06..03-09 is the window and complete.
    assert spans(tick(instance, "2025-03-11T01:00:00", target_days=5)) == []


def test_after_the_delay_yesterday_and_the_refetch_are_requested(instance):
    materialize_days(instance, [dt.date(2025, 3, d) for d in range(5, 10)])
    requests = tick(instance, "2025-03-11T02:30:00", target_days=5)
    assert spans(requests) == ["final:2025-03-10", "refetch:2025-03-09"]
    final = requests[0]
    assert final.asset_selection == [ASSET_KEY]
    assert final.tags["dagster/asset_partition_range_start"] == "2025-03-10"
    assert final.tags["dagster/asset_partition_range_end"] == "2025-03-10"


def test_gaps_are_filled_in_chunks_not_only_the_latest_day(instance):
    # Window of 8 days ending 03-10: 03-03..03-10. Stored: 03-03, 03-07, 03-09.
    materialize_days(instance, [dt.date(2025, 3, 3), dt.date(2025, 3, 7), dt.date(2025, 3, 9)])
    requests = tick(instance, "2025-03-11T03:00:00", target_days=8)
    assert spans(requests) == [
        "final:2025-03-10",
        "missing:2025-03-04..2025-03-06",
        "missing:2025-03-08",
        "refetch:2025-03-09",
    ]
    chunk = requests[1]
    assert (chunk.tags["dagster/asset_partition_range_start"], chunk.tags["dagster/asset_partition_range_end"]) == (
        "2025-03-04",
        "2025-03-06",
    )


def test_when_all_is_done_only_the_daily_refetch_remains_then_nothing(instance):
    materialize_days(instance, [dt.date(2025, 3, d) for d in range(6, 11)])
    assert spans(tick(instance, "2025-03-11T05:00:00", target_days=5)) == ["refetch:2025-03-09"]
    # The run key repeats on a second tick the same day: the daemon launches it once.
    assert spans(tick(instance, "2025-03-11T06:00:00", target_days=5)) == ["refetch:2025-03-09"]


def test_a_second_tick_after_the_first_runs_landed_requests_nothing_new(instance):
    materialize_days(instance, [dt.date(2025, 3, d) for d in range(6, 10)])
    first = spans(tick(instance, "2025-03-11T02:30:00", target_days=5))
    assert first == ["final:2025-03-10", "refetch:2025-03-09"]
    materialize_days(instance, [dt.date(2025, 3, 10), dt.date(2025, 3, 9)])
    second = spans(tick(instance, "2025-03-11T03:30:00", target_days=5))
    # Only keys already requested come back (deduplicated by the daemon); no new day, no new reason.
    assert set(second) <= set(first)


def test_failed_days_are_retried_once_a_day():
    statuses = {dt.date(2025, 3, d): "MATERIALIZED" for d in range(6, 11)}
    statuses[dt.date(2025, 3, 8)] = "FAILED"
    planned = plan_topup(
        at("2025-03-11T04:00:00"), statuses, delay_hours=2, target_days=5, days_per_run=3, first_partition=FIRST
    )
    keys = [p.run_key for p in planned]
    assert keys == ["failed@2025-03-11:2025-03-08", "refetch:2025-03-09"]
    next_day = plan_topup(
        at("2025-03-12T04:00:00"),
        {**statuses, dt.date(2025, 3, 11): "MATERIALIZED"},
        delay_hours=2,
        target_days=5,
        days_per_run=3,
        first_partition=FIRST,
    )
    assert "failed@2025-03-12:2025-03-08" in [p.run_key for p in next_day]


def test_days_in_progress_are_left_to_their_run():
    statuses = {dt.date(2025, 3, d): "IN_PROGRESS" for d in range(6, 11)}
    planned = plan_topup(
        at("2025-03-11T04:00:00"), statuses, delay_hours=2, target_days=5, days_per_run=3, first_partition=FIRST
    )
    assert planned == []


def test_the_window_never_reaches_before_the_first_partition():
    planned = plan_topup(
        at("2024-11-04T04:00:00"), {}, delay_hours=2, target_days=180, days_per_run=5, first_partition=FIRST
    )
    assert [p.run_key for p in planned] == ["final:2024-11-03", "missing:2024-11-01..2024-11-02"]
