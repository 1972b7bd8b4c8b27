"""The `wallet_day_activity` asset: the per-day aggregates of stx_transactions, one partition per UTC day.

Wiring only: the SQL lives in stx_pipeline.storage.aggregates, shared with `stx-pipeline dashboard` (which first
brings every stale day up to date through the same `refresh_day`). Same partitions as stx_transactions, requested
after each raw partition lands (AutomationCondition.eager on the partition), and in the `hiro_api` pool so it is
never a second DuckDB writer beside a fetching run. Each partition is replaced in one transaction and checked
against its raw day.
"""

import datetime as dt

import dagster as dg

from stx_pipeline.assets.transactions import ASSET_KEY as TRANSACTIONS_KEY
from stx_pipeline.assets.transactions import partition_days
from stx_pipeline.ingest import write_connection
from stx_pipeline.resources import StorageResource
from stx_pipeline.schema import TABLE
from stx_pipeline.storage import StorageError
from stx_pipeline.storage.aggregates import TYPE_DAY, refresh_days, stale_days
from stx_pipeline.storage.duckdb_store import REORG_REACH

ASSET_KEY = dg.AssetKey("wallet_day_activity")
CHECK_MATCHES_RAW = "aggregates_match_raw_day"


def build_wallet_day_activity(partitions_def: dg.PartitionsDefinition, days_per_run: int) -> dg.AssetsDefinition:
    """The asset over `partitions_def`, the same days per run as stx_transactions' backfills."""

    @dg.asset(
        key=ASSET_KEY,
        deps=[TRANSACTIONS_KEY],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=days_per_run),
        automation_condition=dg.AutomationCondition.eager(),
        pool="hiro_api",  # one DuckDB writer at a time (dagster.yaml limits the pool to 1)
        group_name="stacks",
        kinds={"duckdb"},
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_MATCHES_RAW,
                asset=ASSET_KEY,
                description="Per partition: transactions and fees in the aggregates equal the raw day's",
            )
        ],
        description=(
            "Per UTC day: one row per (block-time day, wallet) with mined user transactions, successes, fees, "
            "first/last activity and types (agg_wallet_day), counts per type and status (agg_type_day), and "
            "wallets' first-seen dates (wallet_first_seen), kept incrementally. wallet_dashboard reads these."
        ),
    )
    def wallet_day_activity(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
        days = partition_days(context.partition_time_window)
        try:
            with write_connection(storage.backend()) as conn:
                refresh_days(conn, days)
                # A reorg move out of a neighbouring day made it stale too: refresh those within the reach.
                low, high = min(days) - REORG_REACH, max(days) + REORG_REACH
                neighbours = refresh_days(conn, [d for d in stale_days(conn) if low <= d <= high])
                mismatched = _mismatches(conn, days)
        except StorageError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        context.log.info(f"aggregates of {len(days)} days rebuilt; stale neighbours refreshed: {neighbours or 'none'}")
        return dg.MaterializeResult(
            metadata={
                "days": len(days),
                "neighbours_refreshed": dg.MetadataValue.json([d.isoformat() for d in neighbours]),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=CHECK_MATCHES_RAW,
                    passed=not mismatched,
                    metadata={"days_checked": len(days), "mismatched": dg.MetadataValue.json(mismatched)},
                )
            ],
        )

    return wallet_day_activity


def _mismatches(conn, days: list[dt.date]) -> dict[str, dict[str, int]]:
    """Days whose aggregate (count, fees) differs from the raw day's: two bounded scans of the run's days."""
    agg = {
        d: (int(n), int(f))
        for d, n, f in conn.execute(
            f"SELECT partition_date, sum(n_tx), sum(fee_ustx) FROM {TYPE_DAY} "
            "WHERE partition_date BETWEEN ? AND ? GROUP BY 1",
            [min(days), max(days)],
        ).fetchall()
    }
    raw = {
        d: (int(n), int(f))
        for d, n, f in conn.execute(
            f"SELECT partition_date, count(*), coalesce(sum(fee_ustx), 0) FROM {TABLE} "
            "WHERE partition_date BETWEEN ? AND ? GROUP BY 1",
            [min(days), max(days)],
        ).fetchall()
    }
    return {
        d.isoformat(): {"aggregate_tx": agg.get(d, (0, 0))[0], "raw_tx": raw.get(d, (0, 0))[0]}
        for d in days
        if agg.get(d, (0, 0)) != raw.get(d, (0, 0))
    }


# The implicit default automation sensor is STOPPED in OSS; this one runs as soon as the daemon does.
wallet_day_activity_automation = dg.AutomationConditionSensorDefinition(
    "wallet_day_activity_automation",
    target=dg.AssetSelection.assets(ASSET_KEY),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Rebuilds a day's wallet_day_activity after its stx_transactions partition is written.",
)
