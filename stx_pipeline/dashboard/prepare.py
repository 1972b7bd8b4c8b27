"""Compact working tables every dashboard metric is derived from.

Scanning millions of transactions once per metric would be slow, so every figure comes from a
per-(wallet, day) activity table and a per-(day, type, status) count table, summed from the
persisted per-day aggregates (storage.aggregates) when they are up to date.
They are TEMP tables (connection-local, in memory, allowed on read-only connections) with a
unique suffix so concurrent builds on one database never collide, and are dropped afterwards.
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
from stx_pipeline.storage.aggregates import TYPE_DAY, TYPE_DAY_SELECT, WALLET_DAY, WALLET_DAY_SELECT, aggregates_fresh
from stx_pipeline.storage.ingest_record import RECORD_TABLE


@dataclass(frozen=True, slots=True)
class Prepared:
    """Names of the working tables plus the coverage they were clipped to."""

    coverage: Coverage
    wallet_ids: str  # address, wallet (dense INTEGER id used everywhere else)
    wallet_day: str  # wallet, day, n_tx, n_ok, fee_ustx, next_day (next active day of the wallet)
    wallet_first: str  # wallet, first_day, second_day
    covered_days: str  # day: stored partitions
    type_day: str  # day, tx_type, tx_status, n_tx, fee_ustx (all stored rows)

    def names(self) -> dict[str, str]:
        return {
            "ids": self.wallet_ids,
            "wd": self.wallet_day,
            "wf": self.wallet_first,
            "cd": self.covered_days,
            "td": self.type_day,
            "tx": TABLE,
        }


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
def prepared(conn: duckdb.DuckDBPyConnection) -> Iterator[Prepared]:
    suffix = uuid.uuid4().hex[:12]
    cd, agg, ids, wd, wf, td, ws, ts = (
        f"stx_dash_{kind}_{suffix}" for kind in ("cd", "agg", "ids", "wd", "wf", "td", "ws", "ts")
    )
    try:
        # The per-day aggregates (storage.aggregates) when they are up to date: the raw table is not read.
        # Otherwise (a read-only look at a database whose aggregates were never built or are stale) the same
        # SELECTs run over the whole raw table into temp tables: one definition of every figure, two sources.
        if aggregates_fresh(conn):
            wallet_source, type_source = WALLET_DAY, TYPE_DAY
            # Coverage is by stored partition (partition_date, the ingestion unit): a day with no partition is
            # missing data, not a quiet day.
            conn.execute(f"CREATE TEMP TABLE {cd} AS SELECT day FROM {RECORD_TABLE} WHERE rows > 0")
        else:
            wallet_source, type_source = ws, ts
            conn.execute(
                f"CREATE TEMP TABLE {ws} AS {WALLET_DAY_SELECT.format(where='')}", {"user_types": list(USER_TX_TYPES)}
            )
            conn.execute(f"CREATE TEMP TABLE {ts} AS {TYPE_DAY_SELECT.format(where='')}")
            conn.execute(f"CREATE TEMP TABLE {cd} AS SELECT DISTINCT partition_date AS day FROM {TABLE}")
        coverage = _coverage(conn, cd, type_source)
        bounds = {"first": coverage.first_day, "last": coverage.last_day}
        # Activity whose block-time day falls outside the stored partitions (a few transactions near
        # midnight of the last day) is left out until that day is stored.
        # Aggregate by address first, then swap the ~40-char address for a dense integer id:
        # windows, DISTINCTs and joins over integers are several times faster than over strings.
        conn.execute(
            f"""
            CREATE TEMP TABLE {agg} AS
            SELECT address, day, CAST(sum(n_tx) AS BIGINT) AS n_tx, CAST(sum(n_ok) AS BIGINT) AS n_ok,
                   CAST(sum(fee_ustx) AS BIGINT) AS fee_ustx
            FROM {wallet_source}
            WHERE day BETWEEN $first AND $last
            GROUP BY address, day
            """,
            bounds,
        )
        conn.execute(
            f"""
            CREATE TEMP TABLE {ids} AS
            SELECT address, CAST(row_number() OVER () AS INTEGER) AS wallet
            FROM (SELECT DISTINCT address FROM {agg})
            """
        )
        conn.execute(
            f"""
            CREATE TEMP TABLE {wd} AS
            SELECT i.wallet, a.day, a.n_tx, a.n_ok, a.fee_ustx,
                   lead(a.day) OVER (PARTITION BY i.wallet ORDER BY a.day) AS next_day
            FROM {agg} a JOIN {ids} i ON i.address = a.address
            """
        )
        conn.execute(f"DROP TABLE temp.{agg}")  # frees its memory before the remaining steps
        conn.execute(
            f"""
            CREATE TEMP TABLE {wf} AS
            SELECT wallet, min(day) AS first_day, arg_min(next_day, day) AS second_day
            FROM {wd} GROUP BY wallet
            """
        )
        conn.execute(
            f"""
            CREATE TEMP TABLE {td} AS
            SELECT day, tx_type, tx_status, CAST(sum(n_tx) AS BIGINT) AS n_tx, CAST(sum(fee_ustx) AS BIGINT) AS fee_ustx
            FROM {type_source}
            WHERE day BETWEEN $first AND $last
            GROUP BY ALL
            """,
            bounds,
        )
        for name in (ws, ts):
            conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        yield Prepared(coverage=coverage, wallet_ids=ids, wallet_day=wd, wallet_first=wf, covered_days=cd, type_day=td)
    finally:
        for name in (td, wf, wd, ids, agg, cd, ws, ts):
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
