"""Compact working tables every dashboard metric is derived from.

Scanning millions of transactions once per metric would be slow, so the raw table is read
twice only: into a per-(wallet, day) activity table and a per-(day, type, status) count table.
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
from stx_pipeline.schema import DAY_EXPR, MINED_EXPR, TABLE, USER_TX_TYPES


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


def _coverage(conn: duckdb.DuckDBPyConnection, covered_days: str) -> Coverage:
    first, last, covered = conn.execute(f"SELECT min(day), max(day), count(*) FROM {covered_days}").fetchone() or (
        None,
        None,
        0,
    )
    newest, rows = conn.execute(
        f"SELECT max(coalesce(block_time, burn_block_time)), count(*) FROM {TABLE}"
    ).fetchone() or (None, 0)
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
    cd, agg, ids, wd, wf, td = (f"stx_dash_{kind}_{suffix}" for kind in ("cd", "agg", "ids", "wd", "wf", "td"))
    try:
        # Coverage is by stored partition (partition_date, the ingestion unit): a day with no
        # partition is missing data, not a quiet day.
        conn.execute(f"CREATE TEMP TABLE {cd} AS SELECT DISTINCT partition_date AS day FROM {TABLE}")
        coverage = _coverage(conn, cd)
        bounds = {"first": coverage.first_day, "last": coverage.last_day}
        # Activity whose block-time day falls outside the stored partitions (a few transactions near
        # midnight of the last day) is left out until that day is stored.
        # Aggregate by address first, then swap the ~40-char address for a dense integer id:
        # windows, DISTINCTs and joins over integers are several times faster than over strings.
        conn.execute(
            f"""
            CREATE TEMP TABLE {agg} AS
            SELECT * FROM (
                SELECT sender_address AS address, {DAY_EXPR} AS day,
                       count(*) AS n_tx,
                       count(*) FILTER (WHERE tx_status = 'success') AS n_ok,
                       CAST(coalesce(sum(fee_ustx), 0) AS BIGINT) AS fee_ustx
                FROM {TABLE}
                WHERE list_contains($user_types, tx_type) AND {MINED_EXPR}
                GROUP BY ALL
            ) WHERE day BETWEEN $first AND $last
            """,
            {"user_types": list(USER_TX_TYPES), **bounds},
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
            SELECT * FROM (
                SELECT {DAY_EXPR} AS day,
                       coalesce(tx_type, 'unknown') AS tx_type,
                       coalesce(tx_status, 'unknown') AS tx_status,
                       count(*) AS n_tx,
                       CAST(coalesce(sum(fee_ustx), 0) AS BIGINT) AS fee_ustx
                FROM {TABLE} GROUP BY ALL
            ) WHERE day BETWEEN $first AND $last
            """,
            bounds,
        )
        yield Prepared(coverage=coverage, wallet_ids=ids, wallet_day=wd, wallet_first=wf, covered_days=cd, type_day=td)
    finally:
        for name in (td, wf, wd, ids, agg, cd):
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
