"""The `stx_transactions` asset: one UTC day of Stacks transactions per partition, wiring only.

The loop and its error policy live in stx_pipeline.ingest (no Dagster); this module maps its result to a
MaterializeResult, per-day materializations on partial success, and the two checks.
"""

import datetime as dt

import dagster as dg

from stx_pipeline.days import ASSET_NAME
from stx_pipeline.hiro import backfill_listing
from stx_pipeline.ingest import IngestResult, ingest_days
from stx_pipeline.resources import HiroApiResource, StorageResource
from stx_pipeline.storage import StorageError

ASSET_KEY = dg.AssetKey(ASSET_NAME)
CHECK_ROWS_MATCH_TOTAL = "rows_match_api_total"
CHECK_TX_ID_UNIQUE = "tx_id_unique"


def partition_days(window: dg.TimeWindow) -> list[dt.date]:
    """The UTC days of a run's partition window (one day, or a backfill policy's range)."""
    first = window.start.astimezone(dt.UTC).date()
    last = window.end.astimezone(dt.UTC).date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days)]


def build_stx_transactions(partitions_def: dg.PartitionsDefinition, days_per_run: int) -> dg.AssetsDefinition:
    """The asset over `partitions_def` (STX_START_DATE), `days_per_run` days per backfill run (STX_DAYS_PER_RUN);
    built when the code location loads (stx_pipeline.definitions)."""

    @dg.asset(
        key=ASSET_KEY,
        partitions_def=partitions_def,
        # Several days per run amortise Dagster's per-run start-up; each day still commits on its own.
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=days_per_run),
        # One fetching run at a time shares the API's rate budget and the DuckDB file (limit in dagster.yaml).
        pool="hiro_api",
        group_name="stacks",
        kinds={"duckdb", "python"},
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_ROWS_MATCH_TOTAL, asset=ASSET_KEY, description="Rows stored per day equal the API's total"
            ),
            dg.AssetCheckSpec(CHECK_TX_ID_UNIQUE, asset=ASSET_KEY, description="No tx_id is stored twice"),
        ],
        description=(
            "Canonical mined Stacks transactions whose burn_block_time falls in the partition's UTC day, "
            "listed from the Hiro API and stored in DuckDB (table stx_transactions). Each day is replaced "
            "atomically: whole or not at all."
        ),
    )
    def stx_transactions(
        context: dg.AssetExecutionContext, hiro: HiroApiResource, storage: StorageResource
    ) -> dg.MaterializeResult:
        days = partition_days(context.partition_time_window)
        # A run of `backfill --in-process` takes its days from the backfill's one listing (hiro/backfill_listing.py).
        shared = backfill_listing.active()
        if shared is not None and shared.index_of(days) is None:
            shared = None
        try:
            if shared is not None:
                client, fetcher = shared.open(hiro.client, hiro.day_fetcher)
                result = ingest_days(days, client, fetcher, storage.backend(), context.log, shared=shared)
            else:
                with hiro.client(context.log) as client:
                    # STX_API_STRATEGY; an `auto` switch to v3 lasts the run.
                    fetcher = hiro.day_fetcher(client, context.log)
                    result = ingest_days(days, client, fetcher, storage.backend(), context.log)
        except StorageError as exc:  # an unusable database: the run's message, no retry fixes it
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        if result.failures:
            _fail_with_partial_success(context, result)
        return _materialize_result(result)

    return stx_transactions


def _fail_with_partial_success(context: dg.AssetExecutionContext, result: IngestResult) -> None:
    """Record the days that were written (Dagster then marks only the others failed), then fail."""
    for entry in result.per_day:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=ASSET_KEY,
                partition=str(entry["day"]),
                metadata={"dagster/row_count": dg.MetadataValue.int(int(entry["rows"])), **entry},
            )
        )
    raise dg.Failure(
        description=result.failure_summary(),
        metadata={
            "failed_days": dg.MetadataValue.json(
                {
                    d.isoformat(): {"status": e.status, "endpoint": e.endpoint, "error": str(e)[:500]}
                    for d, e in result.failures.items()
                }
            ),
            "written_days": dg.MetadataValue.json(result.written_days),
        },
    )


def _iso(ts: int | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() if ts is not None else "-"


def _materialize_result(result: IngestResult) -> dg.MaterializeResult:
    stats = result.stats
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(result.rows),
            "api_total": dg.MetadataValue.int(result.rows),
            "days": dg.MetadataValue.int(len(result.days)),
            "pages": dg.MetadataValue.int(sum(int(d["pages"]) for d in result.per_day)),
            "requests": dg.MetadataValue.int(stats["requests"]),
            "retries": dg.MetadataValue.int(stats["retries"]),
            "http_429_received": dg.MetadataValue.int(stats["rate_limited"]),
            "deprecation_notices": dg.MetadataValue.int(stats["deprecation_notices"]),
            "seconds": dg.MetadataValue.float(round(result.seconds, 2)),
            "first_burn_block_time": dg.MetadataValue.text(_iso(result.first_burn_block_time)),
            "last_burn_block_time": dg.MetadataValue.text(_iso(result.last_burn_block_time)),
            "per_day": dg.MetadataValue.json(result.per_day),
            "api_strategy": dg.MetadataValue.text(result.api_strategy),
            "switched_to_v3": dg.MetadataValue.bool(result.switched_to_v3),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK_ROWS_MATCH_TOTAL,
                passed=not result.mismatched,
                metadata={"days_checked": len(result.days), "mismatched": dg.MetadataValue.json(result.mismatched)},
            ),
            dg.AssetCheckResult(
                check_name=CHECK_TX_ID_UNIQUE,
                passed=result.duplicates == 0,
                metadata={"duplicate_tx_ids": result.duplicates},
            ),
        ],
    )
