"""The per-day ingest record: one small row per stored UTC day, written in the same transaction as the day.

`stx_ingest_days` answers "which days are stored, how many rows, when, how" without scanning the transaction
table, so `status` costs the same at 180 days and at 2,150, and a per-day aggregate can tell whether the raw day
changed since it was built (`changed_at`). Columns:

    day           DATE              the UTC day (partition_date); one row per day (no key: DuckLake has none)
    rows          BIGINT            rows stored for the day now (a reorg move out of it updates it)
    api_total     BIGINT            the API's `total` when it was listed (NULL: written by a migration/copy)
    fetched_at    TIMESTAMPTZ       when the day was last listed and written
    changed_at    TIMESTAMPTZ       when the day's rows last changed (its own write, or a reorg move out of it)
    strategy      VARCHAR           v1 or v3 (NULL when unknown)
    pages, requests BIGINT          the listing's cost
    first_burn_block_time, last_burn_block_time TIMESTAMPTZ  the day's earliest and latest transaction

Databases from before the record get it on their next write: `ensure_record` creates the table and fills it from
the transaction table once (one grouped scan), so old histories keep working. No Dagster here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb

from stx_pipeline.schema import TABLE

RECORD_TABLE = "stx_ingest_days"

CREATE_RECORD_SQL = f"""
CREATE TABLE IF NOT EXISTS {RECORD_TABLE} (
    day DATE NOT NULL,
    rows BIGINT NOT NULL,
    api_total BIGINT,
    fetched_at TIMESTAMPTZ NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    strategy VARCHAR,
    pages BIGINT,
    requests BIGINT,
    first_burn_block_time TIMESTAMPTZ,
    last_burn_block_time TIMESTAMPTZ
)"""


@dataclass(frozen=True)
class DayListing:
    """How a day was listed (from hiro's DayFetch); what the record keeps beside the row count."""

    api_total: int | None = None
    strategy: str | None = None
    pages: int | None = None
    requests: int | None = None


def has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    # duckdb_tables() sees the current database (a DuckLake catalog after `USE lake`) as information_schema does.
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_catalog = current_database()",
        [name],
    ).fetchone()
    return bool(row and row[0])


def record_exists(conn: duckdb.DuckDBPyConnection) -> bool:
    return has_table(conn, RECORD_TABLE)


def ensure_record(conn: duckdb.DuckDBPyConnection) -> bool:
    """Create the record if missing, filled from the stored rows (the migration); True when it was created.

    Call inside the writer's transaction: the backfill then commits or rolls back with the day.
    """
    if record_exists(conn):
        return False
    conn.execute(CREATE_RECORD_SQL)
    if has_table(conn, TABLE):
        conn.execute(
            f"""INSERT INTO {RECORD_TABLE} (day, rows, fetched_at, changed_at, first_burn_block_time,
                                            last_burn_block_time)
                SELECT partition_date, count(*), max(ingested_at), max(ingested_at), min(burn_block_time),
                       max(burn_block_time)
                FROM {TABLE} GROUP BY partition_date"""
        )
    return True


def record_day(conn: duckdb.DuckDBPyConnection, day: dt.date, listing: DayListing | None, now: dt.datetime) -> None:
    """Upsert `day`'s record from its freshly written rows (inside replace_day's transaction)."""
    listing = listing or DayListing()
    conn.execute(f"DELETE FROM {RECORD_TABLE} WHERE day = ?", [day])
    conn.execute(
        f"""INSERT INTO {RECORD_TABLE}
            SELECT ?::DATE, count(*), ?, ?, ?, ?, ?, ?, min(burn_block_time), max(burn_block_time)
            FROM {TABLE} WHERE partition_date = ?::DATE""",
        [day, listing.api_total, now, now, listing.strategy, listing.pages, listing.requests, day],
    )


def recount_neighbours(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date, now: dt.datetime) -> None:
    """Days in [first, last] whose stored row count changed (a tx moved out by a reorg) get their new count and
    `changed_at = now`, so whatever was built from them is stale. Bounded by the reorg reach."""
    changed = conn.execute(
        f"""SELECT r.day, coalesce(t.n, 0) FROM {RECORD_TABLE} r
            LEFT JOIN (SELECT partition_date, count(*) AS n FROM {TABLE}
                       WHERE partition_date BETWEEN ?::DATE AND ?::DATE GROUP BY 1) t ON t.partition_date = r.day
            WHERE r.day BETWEEN ?::DATE AND ?::DATE AND r.rows <> coalesce(t.n, 0)""",
        [first, last, first, last],
    ).fetchall()
    for day, rows in changed:  # at most the 2 x REORG_REACH neighbours
        conn.execute(f"UPDATE {RECORD_TABLE} SET rows = ?, changed_at = ? WHERE day = ?", [rows, now, day])


def read_records(
    conn: duckdb.DuckDBPyConnection, first: dt.date | None = None, last: dt.date | None = None
) -> dict[dt.date, dict[str, Any]]:
    """The record per day (all days, or those in [first, last]); empty when there is no record table."""
    if not record_exists(conn):
        return {}
    where, params = "", []
    if first is not None and last is not None:
        where, params = "WHERE day BETWEEN ? AND ?", [first, last]
    cursor = conn.execute(f"SELECT * FROM {RECORD_TABLE} {where} ORDER BY day", params)
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def record_summary(conn: duckdb.DuckDBPyConnection) -> tuple[int, dt.datetime | None, dt.datetime | None]:
    """(rows stored, earliest transaction, latest transaction) over the whole history, from the record alone."""
    row = conn.execute(
        f"SELECT coalesce(sum(rows), 0), min(first_burn_block_time), max(last_burn_block_time) "
        f"FROM {RECORD_TABLE} WHERE rows > 0"
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1], row[2]
