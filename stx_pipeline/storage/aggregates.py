"""Per-day aggregates of the transaction table, one partition per stored day, kept up to date incrementally.

The dashboard's inputs, small beside the raw rows and rebuilt only for days whose raw rows changed:

    agg_wallet_day   partition_date, day, address, n_tx, n_ok, fee_ustx, first_at, last_at, tx_types
                     wallets' mined user transactions (schema.USER_TX_TYPES, schema.MINED_EXPR) per block-time
                     day (`day`, schema.DAY_EXPR) within each stored partition
    agg_type_day     partition_date, day, tx_type, tx_status, n_tx, fee_ustx, newest_at   (every stored row)
    agg_built        partition_date, built_from: the ingest record's `changed_at` the partition was built from
    wallet_first_seen address, first_day: each wallet's first active day over all partitions

A partition is stale when its ingest record's `changed_at` differs from `built_from` (its raw rows were written,
or a reorg moved a transaction out of it, since it was built: whoever wrote them) or when it has no aggregate
yet. `refresh_days` replaces partitions (up to CHUNK_DAYS per transaction, each whole or not at all) and keeps
`wallet_first_seen`: a wallet the partitions had before gets its first day recomputed from the aggregates (a
re-fetched old day can move it later or drop the wallet), a wallet only gaining activity takes the earlier of its
stored first day and the new one (no rescan: a daily top-up and a build from nothing stay cheap).

No Dagster here; the `wallet_day_activity` asset and `stx-pipeline dashboard` both call `refresh_stale`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import duckdb

from stx_pipeline.schema import DAY_EXPR, MINED_EXPR, TABLE, USER_TX_TYPES
from stx_pipeline.storage.activity_metrics import DAILY, ensure_activity_tables
from stx_pipeline.storage.activity_metrics import maintain as maintain_activity
from stx_pipeline.storage.ingest_record import RECORD_TABLE, ensure_record, has_table, record_exists
from stx_pipeline.storage.partition_set import partition_set
from stx_pipeline.storage.value_aggregates import refresh_value_partitions

WALLET_DAY = "agg_wallet_day"
TYPE_DAY = "agg_type_day"
BUILT = "agg_built"
FIRST_SEEN = "wallet_first_seen"

CREATE_SQL = (
    f"""CREATE TABLE IF NOT EXISTS {WALLET_DAY} (
        partition_date DATE NOT NULL, day DATE NOT NULL, address VARCHAR NOT NULL, n_tx BIGINT NOT NULL,
        n_ok BIGINT NOT NULL, fee_ustx BIGINT NOT NULL, first_at TIMESTAMPTZ, last_at TIMESTAMPTZ,
        tx_types VARCHAR[])""",
    f"""CREATE TABLE IF NOT EXISTS {TYPE_DAY} (
        partition_date DATE NOT NULL, day DATE NOT NULL, tx_type VARCHAR NOT NULL, tx_status VARCHAR NOT NULL,
        n_tx BIGINT NOT NULL, fee_ustx BIGINT NOT NULL, newest_at TIMESTAMPTZ)""",
    f"CREATE TABLE IF NOT EXISTS {BUILT} (partition_date DATE NOT NULL, built_from TIMESTAMPTZ NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {FIRST_SEEN} (address VARCHAR NOT NULL, first_day DATE NOT NULL)",
)

# One partition's aggregates from its raw rows; `$day` is the partition. The same SELECTs, without the
# partition filter, are the from-scratch computation the tests compare against.
# agg_wallet_day's measures of one sender's user transactions of a day (the rebuild groups with them too).
WALLET_DAY_MEASURES = """count(*) AS n_tx,
           count(*) FILTER (WHERE tx_status = 'success') AS n_ok,
           CAST(coalesce(sum(fee_ustx), 0) AS BIGINT) AS fee_ustx,
           min(coalesce(block_time, burn_block_time)) AS first_at,
           max(coalesce(block_time, burn_block_time)) AS last_at"""
WALLET_DAY_SELECT = f"""
    SELECT partition_date, {DAY_EXPR} AS day, sender_address AS address, {WALLET_DAY_MEASURES},
           list_sort(list_distinct(list(tx_type))) AS tx_types
    FROM {TABLE}
    WHERE list_contains($user_types, tx_type) AND {MINED_EXPR} {{where}}
    GROUP BY partition_date, day, address"""
TYPE_DAY_SELECT = f"""
    SELECT partition_date, {DAY_EXPR} AS day, coalesce(tx_type, 'unknown') AS tx_type,
           coalesce(tx_status, 'unknown') AS tx_status, count(*) AS n_tx,
           CAST(coalesce(sum(fee_ustx), 0) AS BIGINT) AS fee_ustx,
           max(coalesce(block_time, burn_block_time)) AS newest_at
    FROM {TABLE} {{where}}
    GROUP BY ALL"""


def aggregates_exist(conn: duckdb.DuckDBPyConnection) -> bool:
    return has_table(conn, BUILT)


def ensure_aggregates(conn: duckdb.DuckDBPyConnection) -> None:
    for sql in CREATE_SQL:
        conn.execute(sql)


def aggregates_fresh(conn: duckdb.DuckDBPyConnection) -> bool:
    """True when the persisted aggregates exist and no partition is stale: readers may use them alone."""
    return record_exists(conn) and aggregates_exist(conn) and not stale_days(conn)


def stale_days(conn: duckdb.DuckDBPyConnection) -> list[dt.date]:
    """Partitions whose aggregates are missing or older than their raw rows, and aggregates of days no longer
    recorded. Reads only the ingest record and agg_built (a few thousand rows)."""
    if not record_exists(conn):
        return []  # no writer has recorded anything yet (refresh_stale creates the record first)
    if not aggregates_exist(conn) or not has_table(conn, DAILY):  # never built, or built before the activity tables
        return [r[0] for r in conn.execute(f"SELECT day FROM {RECORD_TABLE} ORDER BY day").fetchall()]
    rows = conn.execute(
        f"""SELECT coalesce(r.day, b.partition_date) AS day
            FROM {RECORD_TABLE} r FULL OUTER JOIN {BUILT} b ON b.partition_date = r.day
            WHERE r.day IS NULL OR b.partition_date IS NULL OR b.built_from IS DISTINCT FROM r.changed_at
            ORDER BY day"""
    ).fetchall()
    return [r[0] for r in rows]


# Days per transaction when many are stale (a history built from nothing): bounds the memory of one insert while
# keeping the number of first-seen updates small (each costs ~0.5-1 s of fixed work over wallet_first_seen; 64-day
# chunks made a 2,150-day build from nothing take 30 s at 2M rows, most of it in those updates).
CHUNK_DAYS = 365
# DuckDB's memory limit while building many chunks (issue 13's goal: a history from nothing in < 2 GiB).
BUILD_MEMORY_LIMIT = "1500MB"


def refresh_days(
    conn: duckdb.DuckDBPyConnection, days: Iterable[dt.date], chunk_days: int = CHUNK_DAYS
) -> list[dt.date]:
    """Replace the aggregates of `days` from their raw rows, `chunk_days` partitions per transaction (each
    partition whole or not at all), and move the first-seen dates of the wallets they had or have. Returns the
    days in order."""
    done = sorted(set(days) | set(_migrate_activity(conn)))
    if len(done) <= chunk_days:
        if done:
            _refresh_chunk(conn, done)
        return done
    # A build over many chunks (a history from nothing) runs under a memory bound: DuckDB spills its sorts and
    # aggregates to disk rather than growing with the chunk (the caller's own limit is restored afterwards).
    previous = conn.execute("SELECT current_setting('memory_limit')").fetchone()
    conn.execute(f"SET memory_limit = '{BUILD_MEMORY_LIMIT}'")
    try:
        if not aggregates_exist(conn) or conn.execute(f"SELECT count(*) FROM {BUILT}").fetchone() == (0,):
            from stx_pipeline.storage.rebuild import build_all  # imported late: rebuild imports this module

            return build_all(conn)  # nothing built yet: every table in one pass over the raw table, all days
        for i in range(0, len(done), chunk_days):
            _refresh_chunk(conn, done[i : i + chunk_days])
    finally:
        # The setting reads back rounded ('18.8 GiB' sets 18.7): the default is RESET, not re-set.
        with duckdb.connect() as fresh:
            default = fresh.execute("SELECT current_setting('memory_limit')").fetchone()
        if previous is None or previous == default:
            conn.execute("RESET memory_limit")
        else:
            conn.execute(f"SET memory_limit = '{previous[0]}'")
    return done


def _migrate_activity(conn: duckdb.DuckDBPyConnection) -> list[dt.date]:
    """Aggregates built before the activity tables existed: every partition is marked unbuilt (in one
    transaction with creating those tables, so a refresh stopped half-way leaves the rest stale, not silently
    missing) and returned, to be rebuilt whole."""
    if not aggregates_exist(conn) or has_table(conn, DAILY):
        return []
    conn.execute("BEGIN TRANSACTION")
    try:
        ensure_activity_tables(conn)
        conn.execute(f"DELETE FROM {BUILT}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return stale_days(conn)


def refresh_day(conn: duckdb.DuckDBPyConnection, day: dt.date) -> None:
    refresh_days(conn, [day])


def _refresh_chunk(conn: duckdb.DuckDBPyConnection, days: list[dt.date]) -> None:
    conn.execute("BEGIN TRANSACTION")
    try:
        ensure_aggregates(conn)
        chunk = partition_set(conn, "agg_days", days)
        in_chunk, bounds = chunk.where(), chunk.params
        # What the partitions had, before it goes: each wallet's earliest day in them (its first-seen date may
        # move later or vanish) and the block-time days whose activity figures change.
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE agg_old AS
                SELECT address, min(day) AS old_min FROM {WALLET_DAY} WHERE {in_chunk} GROUP BY address""",
            bounds,
        )
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE agg_changed_days AS SELECT DISTINCT day FROM {WALLET_DAY} WHERE {in_chunk}",
            bounds,
        )
        for table in (WALLET_DAY, TYPE_DAY, BUILT):
            conn.execute(f"DELETE FROM {table} WHERE {in_chunk}", bounds)
        conn.execute(
            # Ordered by day: row groups then hold few days each, so the page's trailing-window reads and the
            # activity refresh's day ranges skip the rest of the history (zone maps on `day`).
            f"INSERT INTO {WALLET_DAY} SELECT * FROM ({WALLET_DAY_SELECT.format(where='AND ' + in_chunk)}) "
            "ORDER BY day",
            {"user_types": list(USER_TX_TYPES), **bounds},
        )
        conn.execute(f"INSERT INTO {TYPE_DAY} {TYPE_DAY_SELECT.format(where='WHERE ' + in_chunk)}", bounds)
        conn.execute(f"INSERT INTO agg_changed_days SELECT DISTINCT day FROM {WALLET_DAY} WHERE {in_chunk}", bounds)
        any_moved = _move_first_seen(conn, in_chunk, bounds)
        conn.execute(
            f"INSERT INTO {BUILT} SELECT day, changed_at FROM {RECORD_TABLE} WHERE day IN (SELECT day FROM agg_days)"
        )
        # Cohorts a wallet left or joined: a wallet new to the aggregates is active only on the changed days
        # (recounted anyway), so only a wallet that had a first-seen date and moved to another week counts; its
        # cells in the other weeks move by one (from the rows of agg_moved_rows), no cohort is recounted.
        conn.execute("CREATE OR REPLACE TEMP TABLE agg_no_cohorts (cohort DATE)")
        moved = ("agg_first_change", "agg_moved_rows") if any_moved else None
        maintain_activity(conn, WALLET_DAY, FIRST_SEEN, RECORD_TABLE, "agg_changed_days", "agg_no_cohorts", moved)
        for name in ("agg_days", "agg_old", "agg_changed_days", "agg_first_change", "agg_no_cohorts"):
            conn.execute(f"DROP TABLE temp.{name}")
        conn.execute("DROP TABLE IF EXISTS temp.agg_moved_rows")
        refresh_value_partitions(conn, days, FIRST_SEEN)  # the value page's aggregates, same transaction
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _move_first_seen(conn: duckdb.DuckDBPyConnection, in_chunk: str, bounds: dict[str, dt.date]) -> bool:
    """Update wallet_first_seen for the chunk's wallets and leave their changes in temp `agg_first_change`
    (address, old_first, new_first; new_first NULL: the wallet has no activity left) and, when a wallet that had a
    first day moved (True returned), the wallet-days from its old first day on in temp `agg_moved_rows`.

    Without reading outside the chunk, except for the few wallets whose stored first day was their earliest day
    in the chunk and is now gone from it (a re-fetched old day lost or moved their transaction): only those get
    their first day recomputed over all their days. Every other wallet's first day is the earlier of its stored
    one (when that came from outside the chunk, or still holds) and the chunk's."""
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE agg_first_change AS
            WITH n AS (SELECT address, min(day) AS new_min FROM {WALLET_DAY} WHERE {in_chunk} GROUP BY address),
            t AS (
                SELECT coalesce(o.address, n.address) AS address, o.old_min, n.new_min, f.first_day AS old_first
                FROM agg_old o FULL OUTER JOIN n ON n.address = o.address
                LEFT JOIN {FIRST_SEEN} f ON f.address = coalesce(o.address, n.address)
            )
            SELECT address, old_first,
                   CASE WHEN old_first IS NULL OR old_min IS NULL OR old_first < old_min
                        THEN least(old_first, new_min)
                        WHEN new_min <= old_first THEN new_min END AS new_first,
                   old_first IS NOT NULL AND old_min IS NOT NULL AND old_first >= old_min
                        AND (new_min IS NULL OR new_min > old_first) AS rescan
            FROM t""",
        bounds,
    )
    # The wallet-days of the wallets whose first day may move, read once from the earliest old first day on (their
    # days outside the chunk all lie on or after it; zone maps skip the rest): a rescanned wallet's new first day is
    # its earliest, and the cohort cells of every wallet that moves to another week follow its active weeks
    # (activity_metrics.derive_cohorts). None when no wallet's first day moves (a daily top-up).
    conn.execute(
        """CREATE OR REPLACE TEMP TABLE agg_moved_rows AS SELECT address FROM agg_first_change
           WHERE rescan OR old_first IS DISTINCT FROM new_first AND old_first IS NOT NULL"""
    )
    since = conn.execute(
        "SELECT min(old_first) FROM agg_first_change WHERE address IN (SELECT address FROM agg_moved_rows)"
    ).fetchone()
    any_moved = since is not None and since[0] is not None
    if not any_moved:
        conn.execute("DROP TABLE agg_moved_rows")
    else:
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE agg_moved_rows AS SELECT DISTINCT address, day FROM {WALLET_DAY}
                WHERE day >= CAST($since AS DATE) AND address IN (SELECT address FROM agg_moved_rows)""",
            {"since": since[0]},
        )
        conn.execute(
            """UPDATE agg_first_change c SET new_first = r.first_day
               FROM (SELECT address, min(day) AS first_day FROM agg_moved_rows GROUP BY address) r
               WHERE c.rescan AND c.address = r.address"""
        )
    conn.execute("DELETE FROM agg_first_change WHERE old_first IS NOT DISTINCT FROM new_first")
    # A daily top-up changes only wallets new to the aggregates: nothing stored to delete, no scan.
    if conn.execute("SELECT count(*) FROM agg_first_change WHERE old_first IS NOT NULL").fetchone()[0]:
        conn.execute(
            f"DELETE FROM {FIRST_SEEN} "
            "WHERE address IN (SELECT address FROM agg_first_change WHERE old_first IS NOT NULL)"
        )
    conn.execute(
        f"INSERT INTO {FIRST_SEEN} SELECT address, new_first FROM agg_first_change WHERE new_first IS NOT NULL"
    )
    return any_moved


def refresh_stale(conn: duckdb.DuckDBPyConnection) -> list[dt.date]:
    """Bring every missing or stale partition up to date (the record is made first on a database from before
    it); returns the days refreshed. Needs a read-write connection."""
    conn.execute("BEGIN TRANSACTION")
    try:
        if has_table(conn, TABLE):
            ensure_record(conn)
        ensure_aggregates(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return refresh_days(conn, stale_days(conn))


def first_seen_wallets(conn: duckdb.DuckDBPyConnection) -> int | None:
    """Wallets ever seen (from wallet_first_seen); None when the aggregates were never built."""
    if not has_table(conn, FIRST_SEEN):
        return None
    row = conn.execute(f"SELECT count(*) FROM {FIRST_SEEN}").fetchone()
    return int(row[0]) if row else 0
