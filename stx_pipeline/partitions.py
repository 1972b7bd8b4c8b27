"""The daily partitions: the one definition every asset, sensor and command shares, built from STX_START_DATE
when the code location loads (`stx_pipeline.definitions`), never at import."""

from __future__ import annotations

import datetime as dt

import dagster as dg


def daily_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    """UTC days from `start_date`; end_offset=0 means the last partition is yesterday: only complete days exist."""
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), end_offset=0, timezone="UTC")


def day_statuses(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    days: list[dt.date],
    first_partition: dt.date | None = None,
) -> dict[dt.date, str | None]:
    """The instance's status of each day: MATERIALIZED, FAILED, IN_PROGRESS, or None when never attempted.

    `first_partition`: the asset's STX_START_DATE (default: this process's settings). The instance caches
    statuses per partitions definition, so asking with the code location's own definition keeps that cache valid.
    """
    if not days:
        return {}
    if first_partition is None:
        from stx_pipeline.settings import Settings

        first_partition = Settings.from_env().start_date
    partitions = daily_partitions(min(first_partition, *days))
    by_key = instance.get_status_by_partition(asset_key, [d.isoformat() for d in days], partitions) or {}
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
