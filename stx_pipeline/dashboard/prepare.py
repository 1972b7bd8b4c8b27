"""The small tables every dashboard metric is read from.

When the persisted aggregates are up to date (storage.aggregates, storage.activity_metrics) the page reads them
as they are: per-day active wallets and MAU, per-period active wallets, cohort cells, first-seen dates, and the
per-(wallet, day) rows of a trailing window only. Nothing walks the whole (wallet, day) history.

Otherwise (a read-only look at a database whose aggregates were never built or are stale) the same tables are
derived from the raw table into TEMP tables (connection-local, in memory, allowed on read-only connections) with
a unique suffix so concurrent builds never collide, by the same SELECTs and the same `derive_*` functions: one
definition of every figure, two sources. Those temp tables are dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from stx_pipeline.dashboard.models import Coverage
from stx_pipeline.schema import TABLE, USER_TX_TYPES
from stx_pipeline.storage.activity_metrics import COHORTS, DAILY, PERIODS, derive_all
from stx_pipeline.storage.aggregates import (
    FIRST_SEEN,
    TYPE_DAY,
    TYPE_DAY_SELECT,
    WALLET_DAY,
    WALLET_DAY_SELECT,
    aggregates_fresh,
)
from stx_pipeline.storage.ingest_record import RECORD_TABLE


@dataclass(frozen=True, slots=True)
class Prepared:
    """Names of the tables the metrics read plus the coverage they are clipped to."""

    coverage: Coverage
    wallet_day: str  # address, day, n_tx, n_ok, fee_ustx (one wallet may have two rows a day: read a window, sum)
    first_seen: str  # address, first_day
    daily: str  # day, active, mau
    periods: str  # kind ('week' | 'month'), start, active
    cohorts: str  # cohort, wk, active
    covered_days: str  # day: stored partitions
    type_day: str  # day, tx_type, tx_status, n_tx, fee_ustx (all stored rows; may repeat a key: sum)


def _coverage(conn: duckdb.DuckDBPyConnection, covered_days: str, type_source: str) -> Coverage:
    first, last, covered = conn.execute(f"SELECT min(day), max(day), count(*) FROM {covered_days}").fetchone() or (
        None,
        None,
        0,
    )
    newest, rows = conn.execute(f"SELECT max(newest_at), coalesce(sum(n_tx), 0) FROM {type_source}").fetchone() or (
        None,
        0,
    )
    missing: list[date] = []
    if first is not None:
        missing = [
            r[0]
            for r in conn.execute(
                f"""
                SELECT CAST(d.range AS DATE) AS day
                FROM range(CAST($first AS TIMESTAMP), CAST($last AS TIMESTAMP) + INTERVAL 1 DAY,
                           INTERVAL 1 DAY) AS d
                WHERE CAST(d.range AS DATE) NOT IN (SELECT day FROM {covered_days})
                ORDER BY day
                """,
                {"first": first, "last": last},
            ).fetchall()
        ]
    newest_dt: datetime | None = newest
    return Coverage(
        first_day=first,
        last_day=last,
        days_covered=int(covered),
        missing_days=tuple(missing),
        newest_tx_at=newest_dt,
        row_count=int(rows),
    )


@contextmanager
def prepared(conn: duckdb.DuckDBPyConnection, fresh: bool | None = None) -> Iterator[Prepared]:
    """The working tables: the persisted aggregates when `fresh` (default: `aggregates_fresh(conn)`), else TEMP
    tables derived from the raw table."""
    suffix = uuid.uuid4().hex[:12]
    temps = {kind: f"stx_dash_{kind}_{suffix}" for kind in ("cd", "ws", "ts", "fs", "daily", "periods", "cohorts")}
    try:
        cd = temps["cd"]
        if fresh is None:
            fresh = aggregates_fresh(conn)
        if fresh:
            names = {"ws": WALLET_DAY, "ts": TYPE_DAY, "fs": FIRST_SEEN, "daily": DAILY, "periods": PERIODS}
            names["cohorts"] = COHORTS
            # Coverage is by stored partition (partition_date, the ingestion unit): a day with no partition is
            # missing data, not a quiet day.
            conn.execute(f"CREATE TEMP TABLE {cd} AS SELECT day FROM {RECORD_TABLE} WHERE rows > 0")
            coverage = _coverage(conn, cd, TYPE_DAY)
        else:
            names = temps
            conn.execute(
                f"CREATE TEMP TABLE {names['ws']} AS {WALLET_DAY_SELECT.format(where='')}",
                {"user_types": list(USER_TX_TYPES)},
            )
            conn.execute(f"CREATE TEMP TABLE {names['ts']} AS {TYPE_DAY_SELECT.format(where='')}")
            conn.execute(f"CREATE TEMP TABLE {cd} AS SELECT DISTINCT partition_date AS day FROM {TABLE}")
            conn.execute(
                f"CREATE TEMP TABLE {names['fs']} AS SELECT address, min(day) AS first_day FROM {names['ws']} "
                "GROUP BY address"
            )
            coverage = _coverage(conn, cd, names["ts"])
            derive_all(conn, names["ws"], names["fs"], names, (coverage.first_day, coverage.last_day))
        yield Prepared(
            coverage=coverage,
            wallet_day=names["ws"],
            first_seen=names["fs"],
            daily=names["daily"],
            periods=names["periods"],
            cohorts=names["cohorts"],
            covered_days=cd,
            type_day=names["ts"],
        )
    finally:
        for name in temps.values():
            # Never mask the original error with a cleanup failure; temp tables die with the connection.
            with suppress(duckdb.Error):
                conn.execute(f"DROP TABLE IF EXISTS temp.{name}")


@contextmanager
def using(conn: duckdb.DuckDBPyConnection, ctx: Prepared | None) -> Iterator[Prepared]:
    """Reuse the caller's working tables, or build (and drop) them for a single metric."""
    if ctx is not None:
        yield ctx
        return
    with prepared(conn) as fresh:
        yield fresh
