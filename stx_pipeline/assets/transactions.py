"""The `stx_transactions` asset: one UTC day of Stacks transactions per partition, wiring only.

HTTP happens with no database connection open; each day is then written in one short transaction, so
concurrent readers (status, dashboard) and other runs only ever wait a fraction of a second.
"""

import datetime as dt
import time

import dagster as dg
import requests
import urllib3.exceptions
from dagster_duckdb import DuckDBResource

from stx_pipeline.days import ASSET_NAME
from stx_pipeline.hiro import EndpointGoneError, HiroApiError, QuotaExhaustedError
from stx_pipeline.resources import HiroApiResource, check_writable, write_connection
from stx_pipeline.storage import day_counts, duplicate_tx_ids, replace_day

ASSET_KEY = dg.AssetKey(ASSET_NAME)
CHECK_ROWS_MATCH_TOTAL = "rows_match_api_total"
CHECK_TX_ID_UNIQUE = "tx_id_unique"
# Errors no later day of the run can escape: fail at once instead of trying each day.
STOP_THE_RUN = (EndpointGoneError, QuotaExhaustedError)


def api_unreachable(exc: BaseException) -> bool:
    """Connection refused or an unknown host (DNS) behind a failed request: STX_API_URL is wrong or the API is
    down, so every later day of the run would spend its retries (~40 s) on the same error.

    Only a failure to open the connection counts; a reset or truncated answer mid-run is the network's, and the
    next day may well succeed.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.ConnectionError) and not isinstance(seen, requests.Timeout):
            reason = getattr(seen.args[0], "reason", None) if seen.args else None
            # urllib3: NameResolutionError (DNS) is a NewConnectionError, as is "connection refused".
            return isinstance(reason, urllib3.exceptions.NewConnectionError)
        seen = seen.__cause__ or seen.__context__
    return False


def partition_days(window: dg.TimeWindow) -> list[dt.date]:
    """The UTC days of a run's partition window (one day, or a backfill policy's range)."""
    first = window.start.astimezone(dt.UTC).date()
    last = window.end.astimezone(dt.UTC).date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days)]


def _fail_with_partial_success(
    context: dg.AssetExecutionContext,
    per_day: list[dict[str, object]],
    failures: dict[dt.date, HiroApiError],
    days: list[dt.date],
) -> None:
    """Record the days that were written (Dagster then marks only the others failed), then fail."""
    for entry in per_day:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=ASSET_KEY,
                partition=str(entry["day"]),
                metadata={"dagster/row_count": dg.MetadataValue.int(int(entry["rows"])), **entry},  # type: ignore[call-overload]
            )
        )
    first_day, first_error = next(iter(failures.items()))
    not_attempted = [d for d in days if d not in failures and all(e["day"] != d.isoformat() for e in per_day)]
    raise dg.Failure(
        description=(
            f"{len(failures)} of {len(days)} days failed; nothing of those days was written "
            f"(days written in this run are kept and marked materialized). First: partition {first_day}: "
            f"{first_error}"
            + (f" Not attempted after it: {', '.join(d.isoformat() for d in not_attempted)}." if not_attempted else "")
        ),
        metadata={
            "failed_days": dg.MetadataValue.json(
                {
                    d.isoformat(): {"status": e.status, "endpoint": e.endpoint, "error": str(e)[:500]}
                    for d, e in failures.items()
                }
            ),
            "written_days": dg.MetadataValue.json([e["day"] for e in per_day]),
        },
    )


def _iso(ts: int | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() if ts is not None else None


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
        context: dg.AssetExecutionContext, hiro: HiroApiResource, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        return _materialize(context, hiro, duckdb)

    return stx_transactions


def _materialize(
    context: dg.AssetExecutionContext, hiro: HiroApiResource, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    days = partition_days(context.partition_time_window)
    started = time.monotonic()
    per_day: list[dict[str, object]] = []
    api_totals: dict[dt.date, int] = {}
    failures: dict[dt.date, HiroApiError] = {}
    first_time: int | None = None
    last_time: int | None = None
    check_writable(duckdb)  # a wrong STX_DUCKDB_PATH fails here, before the first request
    with hiro.client(context.log) as client:
        fetcher = hiro.day_fetcher(client, context.log)  # STX_API_STRATEGY; an `auto` switch to v3 lasts the run
        for day in days:
            try:
                fetched = fetcher.fetch(day)
            except HiroApiError as exc:
                unreachable = api_unreachable(exc)
                if unreachable:
                    exc = HiroApiError(
                        f"{exc} The API at {hiro.base_url} cannot be reached (connection refused or unknown "
                        "host): check STX_API_URL (and that the API or simulator is running); the run stops here.",
                        status=exc.status,
                        endpoint=exc.endpoint,
                    )
                failures[day] = exc
                context.log.error(f"partition {day}: {exc}")
                if isinstance(exc, STOP_THE_RUN) or exc.status in (401, 403) or unreachable:
                    break  # the key, the quota, the endpoint or the address: no later day can succeed either
                continue  # a bad day must not cost the other days of the run
            write_started = time.monotonic()
            with write_connection(duckdb) as conn:
                replace_day(conn, day, fetched.table)
            write_s = time.monotonic() - write_started
            api_totals[day] = fetched.total
            first_time = first_time if first_time is not None else fetched.first_burn_block_time
            last_time = fetched.last_burn_block_time or last_time
            per_day.append(
                {
                    "day": day.isoformat(),
                    "rows": fetched.total,
                    "pages": fetched.pages,
                    "strategy": fetched.strategy,
                    "requests": fetched.requests,
                    "fetch_s": round(fetched.seconds, 2),
                    "write_s": round(write_s, 3),
                }
            )
            context.log.info(
                f"{day}: {fetched.total} transactions in {fetched.pages} pages, "
                f"fetched in {fetched.seconds:.1f}s, written in {write_s:.2f}s"
            )
        stats = client.stats.snapshot()

    if failures:
        _fail_with_partial_success(context, per_day, failures, days)

    with write_connection(duckdb) as conn:
        stored = day_counts(conn, days)
        duplicates = duplicate_tx_ids(conn)
    mismatched = {d.isoformat(): {"stored": stored[d], "api_total": t} for d, t in api_totals.items() if stored[d] != t}
    rows = sum(api_totals.values())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(rows),
            "api_total": dg.MetadataValue.int(rows),
            "days": dg.MetadataValue.int(len(days)),
            "pages": dg.MetadataValue.int(sum(int(d["pages"]) for d in per_day)),  # type: ignore[call-overload]
            "requests": dg.MetadataValue.int(stats["requests"]),
            "retries": dg.MetadataValue.int(stats["retries"]),
            "http_429_received": dg.MetadataValue.int(stats["rate_limited"]),
            "deprecation_notices": dg.MetadataValue.int(stats["deprecation_notices"]),
            "seconds": dg.MetadataValue.float(round(time.monotonic() - started, 2)),
            "first_burn_block_time": dg.MetadataValue.text(_iso(first_time) or "-"),
            "last_burn_block_time": dg.MetadataValue.text(_iso(last_time) or "-"),
            "per_day": dg.MetadataValue.json(per_day),
            "api_strategy": dg.MetadataValue.text(fetcher.active),
            "switched_to_v3": dg.MetadataValue.bool(fetcher.switched_to_v3),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK_ROWS_MATCH_TOTAL,
                passed=not mismatched,
                metadata={"days_checked": len(days), "mismatched": dg.MetadataValue.json(mismatched)},
            ),
            dg.AssetCheckResult(
                check_name=CHECK_TX_ID_UNIQUE,
                passed=duplicates == 0,
                metadata={"duplicate_tx_ids": duplicates},
            ),
        ],
    )
