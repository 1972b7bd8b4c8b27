"""The daily_topup sensor at fixed evaluation times, on a real (temporary) instance and a real DuckDB file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from stx_pipeline.assets.transactions import ASSET_KEY
from stx_pipeline.hiro.client import DEFAULT_RPM_WITHOUT_KEY
from stx_pipeline.resources import HiroApiResource, StorageResource
from stx_pipeline.schema import TABLE
from stx_pipeline.sensors import TopupPolicy, build_daily_topup, plan_topup
from stx_pipeline.storage import ensure_schema
from stx_pipeline_tests.conftest import dagster_instance, lock_held_by_another_process

FIRST = dt.date(2024, 11, 1)
daily_topup = build_daily_topup(running=True)
DB: Path  # set per test by the `instance` fixture: the DuckDB file the sensor reads


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def store_rows(db: Path, days: list[dt.date], per_day: int = 2) -> None:
    """Rows in the real DuckDB file for these days (the sensor only counts rows per partition_date)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db)) as conn:
        ensure_schema(conn)
        for day in days:
            for i in range(per_day):
                conn.execute(
                    f"INSERT INTO {TABLE} (tx_id, partition_date, block_height, burn_block_time, sender_address, "
                    "ingested_at) VALUES (?, ?, 1, ?, 'SP000', now())",
                    [f"0x{day:%Y%m%d}{i:04d}", day, dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)],
                )


def materialize_days(instance: dg.DagsterInstance, days: list[dt.date], *, in_duckdb: bool = True) -> None:
    """Materialized in the instance, and (as a real run would leave them) stored in DuckDB."""
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=ASSET_KEY, partition=day.isoformat()))
    if in_duckdb:
        store_rows(DB, days)


def sensor_context(
    instance: dg.DagsterInstance, now: str, target_days: int = 5, days_per_run: int = 3, db: Path | None = None
) -> dg.SensorEvaluationContext:
    return dg.build_sensor_context(
        instance=instance,
        resources={
            "topup": TopupPolicy(delay_hours=2, target_days=target_days, days_per_run=days_per_run, fixed_now=now),
            "storage": StorageResource(duckdb_path=str(db or DB)),
            "hiro": HiroApiResource(base_url="http://127.0.0.1:9"),  # never called: the budget is read
        },
    )


def tick(instance: dg.DagsterInstance, now: str, target_days: int = 5, db: Path | None = None) -> list[dg.RunRequest]:
    result = daily_topup(sensor_context(instance, now, target_days, db=db))
    return list(result.run_requests or [])


def spans(requests: list[dg.RunRequest]) -> list[str]:
    return [r.run_key for r in requests]


@pytest.fixture
def instance(tmp_path):
    global DB
    DB = tmp_path / "data" / "wallet_metrics.duckdb"
    (tmp_path / "dagster").mkdir()
    with dagster_instance(tmp_path / "dagster") as inst:
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
    # Yesterday landed, so it is not asked again; only today's refetch comes back, under the run key the first
    # tick used (the daemon launches a run key once): no new day, no new reason. An empty plan fails here.
    assert second == ["refetch:2025-03-09"]
    assert second[0] in first


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


# -- both sources: the instance and DuckDB --------------------------------------------------------


def test_days_materialized_but_gone_from_duckdb_are_requested_again_once_a_day(instance):
    """A deleted database file: the instance still says materialized, the sensor fetches the days again."""
    materialize_days(instance, [dt.date(2025, 3, d) for d in range(6, 11)])
    assert spans(tick(instance, "2025-03-11T05:00:00")) == ["refetch:2025-03-09"]
    DB.unlink()
    lost = tick(instance, "2025-03-11T05:15:00")
    assert spans(lost) == ["lost@2025-03-11:2025-03-06..2025-03-08", "lost@2025-03-11:2025-03-09..2025-03-10"]
    assert lost[0].tags["dagster/asset_partition_range_start"] == "2025-03-06"
    assert lost[0].tags["stx-pipeline/topup-reason"] == "lost"
    # The next day's run keys differ: still lost then (an empty day, a failing write), it is asked again once.
    assert "lost@2025-03-12:2025-03-07..2025-03-09" in spans(tick(instance, "2025-03-12T05:00:00"))


def test_rows_lost_from_one_day_are_seen_even_though_the_file_is_there(instance):
    materialize_days(instance, [dt.date(2025, 3, d) for d in range(6, 11)])
    with duckdb.connect(str(DB)) as conn:
        conn.execute(f"DELETE FROM {TABLE} WHERE partition_date = ?", [dt.date(2025, 3, 7)])
    assert spans(tick(instance, "2025-03-11T05:00:00")) == ["lost@2025-03-11:2025-03-07", "refetch:2025-03-09"]


@pytest.mark.slow  # starts a process: another process holds the DuckDB lock
def test_a_duckdb_file_locked_by_a_writer_is_unknown_for_the_tick_neither_missing_nor_stored(instance, capfd):
    materialize_days(instance, [dt.date(2025, 3, d) for d in range(6, 10)])  # 03-10 missing in both
    with lock_held_by_another_process(DB, seconds=60):
        requests = tick(instance, "2025-03-11T05:00:00")
    # The instance alone decides this tick: yesterday is requested, nothing is re-fetched as "lost".
    assert spans(requests) == ["final:2025-03-10", "refetch:2025-03-09"]
    log = capfd.readouterr().err
    assert "DuckDB not read this tick, deciding from the instance alone" in log
    assert "stayed locked by another process" in log


def test_an_unreadable_database_path_is_not_read_as_stored(instance, tmp_path):
    materialize_days(instance, [dt.date(2025, 3, d) for d in range(6, 11)], in_duckdb=False)
    directory = tmp_path / "a_directory.duckdb"
    directory.mkdir()
    result = daily_topup(sensor_context(instance, "2025-03-11T01:00:00", db=directory))
    assert not result.run_requests
    reason = result.skip_reason.skip_message if result.skip_reason else ""
    assert "DuckDB could not be read" in reason
    assert "the window is complete" not in reason


def test_the_first_tick_announces_how_many_days_and_how_long(instance, capfd):
    """A fresh `make up`: STX_TARGET_DAYS=180 in runs of 5 is 37 runs; 18,900 requests at the keyless budget."""
    context = sensor_context(instance, "2025-06-30T05:00:00", target_days=180, days_per_run=5)
    result = daily_topup(context)
    assert len(result.run_requests or []) == 37
    hours = 18_900 / DEFAULT_RPM_WITHOUT_KEY / 60
    assert (
        "daily_topup requests 180 days in 37 runs (final, missing): 180 days, about 18,900 requests "
        f"(105/day, a ~5,000-tx mainnet day): ~{hours:.1f} h at {DEFAULT_RPM_WITHOUT_KEY} "
        "requests/min; without HIRO_API_KEY"
    ) in " ".join(capfd.readouterr().err.split())
    # The same requests on the next tick (until their runs exist) are not announced again.
    again = sensor_context(instance, "2025-06-30T05:15:00", target_days=180, days_per_run=5)
    again.update_cursor(result.cursor)
    assert len(daily_topup(again).run_requests or []) == 37
    assert "daily_topup requests" not in capfd.readouterr().err
