"""The daily partitions: the one definition every asset, sensor and command shares."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from stx_pipeline.settings import Settings

# UTC days; end_offset=0 means the last partition is yesterday: only complete days exist.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=Settings.from_env().start_date.isoformat(), end_offset=0, timezone="UTC"
)


def day_statuses(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, days: list[dt.date]
) -> dict[dt.date, str | None]:
    """The instance's status of each day: MATERIALIZED, FAILED, IN_PROGRESS, or None when never attempted."""
    by_key = instance.get_status_by_partition(asset_key, [d.isoformat() for d in days], daily_partitions) or {}
    return {dt.date.fromisoformat(k): (v.value if v is not None else None) for k, v in by_key.items()}


def pending_backfill_days(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> set[dt.date]:
    """Days of `asset_key` targeted by unfinished (REQUESTED) asset backfills. The backfill daemon creates their
    runs a few at a time; until a day's run exists the instance reports it as never attempted, yet it is taken."""
    from dagster._core.execution.backfill import BulkActionStatus

    days: set[dt.date] = set()
    for backfill in instance.get_backfills(status=BulkActionStatus.REQUESTED):
        data = backfill.asset_backfill_data
        if data is None:
            continue  # a job backfill, or one stored in the old serialized form: not ours
        days.update(
            dt.date.fromisoformat(p.partition_key)
            for p in data.target_subset.iterate_asset_partitions()
            if p.asset_key == asset_key and p.partition_key
        )
    return days
