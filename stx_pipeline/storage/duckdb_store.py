"""DuckDB SQL of the transaction history: atomic day replacement, read-only access, content checks.

Functions take an open connection, except `connect_read_only` which is the one place readers open the
file. Writers get their connection from dagster-duckdb's DuckDBResource (see stx_pipeline.resources).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import tenacity

from stx_pipeline.days import day_bounds
from stx_pipeline.schema import COLUMN_NAMES, CONTENT_COLUMNS, CREATE_TABLE_SQL, TABLE
from stx_pipeline.storage.ingest_record import (
    RECORD_TABLE,
    DayListing,
    ensure_record,
    record_day,
    record_exists,
    recount_neighbours,
)

# A reader waits this long at most for a writer's short window to end before giving up. The default of
# STX_DUCKDB_LOCK_TIMEOUT_S: the settings pass the configured value in (stx_pipeline.storage.backend); storage
# reads no environment.
READ_LOCK_TIMEOUT_S = 120.0
# How long a DuckLake writer retries commit conflicts: the default of STX_WRITE_CONFLICT_TIMEOUT_S.
WRITE_CONFLICT_TIMEOUT_S = 300.0


class StorageError(Exception):
    """The database file cannot be used; the message says why and what to do."""


class NothingStoredError(StorageError):
    """There is no history yet (no DuckDB file, an empty lake): a known "0 rows everywhere", not an unknown."""


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(CREATE_TABLE_SQL)


def is_write_conflict(exc: BaseException) -> bool:
    """A concurrent writer committed first (DuckLake: "Transaction conflict"); the whole transaction may be retried."""
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


# DuckLake writers replacing different days still conflict at commit (both touch the one table); retrying the whole
# day's transaction with randomized exponential backoff lands every day (see docs/DEPLOY.md). The embedded file has
# one writer at a time, so there this never triggers.
def write_conflict_retry(timeout_s: float = WRITE_CONFLICT_TIMEOUT_S) -> dict[str, Any]:
    """tenacity.Retrying arguments retrying a whole transaction on write conflicts for up to `timeout_s`."""
    return {
        "retry": tenacity.retry_if_exception(is_write_conflict),
        "wait": tenacity.wait_random_exponential(multiplier=0.1, max=5.0),
        "stop": tenacity.stop_after_delay(timeout_s),
        "reraise": True,
        # Visible in the run's logs: frequent retries mean too many writers for one table's commit rate.
        "before_sleep": tenacity.before_sleep_log(logging.getLogger(__name__), logging.INFO),
    }


WRITE_CONFLICT_RETRY = write_conflict_retry()


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    # A failed COMMIT has already ended the transaction: nothing to roll back, and the real error must surface.
    with contextlib.suppress(duckdb.TransactionException):
        conn.execute("ROLLBACK")


# How far (in days) a transaction can move between two listings of the same day.
REORG_REACH = dt.timedelta(days=2)


def replace_day(
    conn: duckdb.DuckDBPyConnection,
    day: dt.date,
    rows: Any,
    *,
    conflict_timeout_s: float = WRITE_CONFLICT_TIMEOUT_S,
    listing: DayListing | None = None,
) -> int:
    """Replace one UTC day (half-open on burn_block_time) with `rows` in ONE transaction.

    `rows` is an Arrow table (or anything DuckDB scans) with the schema's columns in order. A tx_id
    already stored under another day is moved: after a reorganisation the newest listing is the truth,
    and tx_id stays unique. On any error the transaction is rolled back and the day keeps its old rows;
    a write conflict with a concurrent writer (DuckLake) retries the whole transaction.

    The same transaction upserts the day's ingest record (`listing`: the API's total, strategy, pages, requests)
    and recounts the neighbouring days a moved tx left (storage.ingest_record); a database from before the
    record gets it here, filled from its rows.
    """
    start, end = day_bounds(day)
    columns = ", ".join(COLUMN_NAMES)
    conn.register("incoming_day", rows)

    def attempt() -> None:
        conn.execute("BEGIN TRANSACTION")
        try:
            ensure_schema(conn)
            ensure_record(conn)
            conn.execute(f"DELETE FROM {TABLE} WHERE burn_block_time >= ? AND burn_block_time < ?", [start, end])
            # Only neighbouring days can hold a moved tx (a Bitcoin reorg deep enough to move one further
            # is unheard of); bounding the scan keeps the write time flat as the history grows.
            conn.execute(
                f"DELETE FROM {TABLE} WHERE partition_date >= ? AND partition_date <= ? "
                "AND tx_id IN (SELECT tx_id FROM incoming_day)",
                [day - REORG_REACH, day + REORG_REACH],
            )
            conn.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM incoming_day")
            now = dt.datetime.now(dt.UTC)
            record_day(conn, day, listing, now)
            recount_neighbours(conn, day - REORG_REACH, day + REORG_REACH, now)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    try:
        tenacity.Retrying(**write_conflict_retry(conflict_timeout_s))(attempt)
    finally:
        conn.unregister("incoming_day")
    return len(rows)


def table_exists(conn: duckdb.DuckDBPyConnection) -> bool:
    row = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [TABLE]).fetchone()
    return bool(row and row[0])


def day_counts(conn: duckdb.DuckDBPyConnection, days: Iterable[dt.date]) -> dict[dt.date, int]:
    """Rows stored per day (0 for a day with none)."""
    wanted = sorted(set(days))
    counts = dict.fromkeys(wanted, 0)
    if not wanted or not table_exists(conn):
        return counts
    rows = conn.execute(
        f"SELECT partition_date, count(*) FROM {TABLE} WHERE partition_date >= ? AND partition_date <= ? GROUP BY 1",
        [wanted[0], wanted[-1]],
    ).fetchall()
    for day, count in rows:
        if day in counts:
            counts[day] = count
    return counts


def duplicate_tx_ids(conn: duckdb.DuckDBPyConnection, days: Iterable[dt.date] | None = None) -> int:
    """How many tx_ids are stored more than once (0 when the table is sound).

    `days`: only over those days and their reorg reach (±REORG_REACH), the only rows a write of those days can
    have duplicated against (replace_day deletes a moved tx_id within that reach), so a run's check costs the
    same at any history size. None: the whole table (`stx-pipeline audit`).
    """
    if not table_exists(conn):
        return 0
    where, params = "", []
    if days is not None:
        reach = REORG_REACH.days
        # The days and their neighbours as a set: a run's days need not be contiguous (a gap and yesterday).
        wanted = sorted({d + dt.timedelta(days=k) for d in days for k in range(-reach, reach + 1)})
        if not wanted:
            return 0
        where, params = f"WHERE partition_date IN ({', '.join('?' for _ in wanted)})", wanted
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT tx_id FROM {TABLE} {where} GROUP BY tx_id HAVING count(*) > 1)", params
    ).fetchone()
    return int(row[0]) if row else 0


def audit(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The whole-table checks a run no longer pays for (`stx-pipeline audit`): tx_ids stored twice anywhere, and days
    whose ingest record's row count differs from the rows stored (both full scans; read-only)."""
    if not table_exists(conn):
        return {"duplicate_tx_ids": 0, "record_mismatches": {}, "record": False}
    mismatches: dict[str, dict[str, int]] = {}
    has_record = record_exists(conn)
    if has_record:
        rows = conn.execute(
            f"""SELECT coalesce(r.day, t.partition_date), coalesce(r.rows, 0), coalesce(t.n, 0)
                FROM {RECORD_TABLE} r
                FULL OUTER JOIN (SELECT partition_date, count(*) AS n FROM {TABLE} GROUP BY 1) t
                ON t.partition_date = r.day
                WHERE coalesce(r.rows, 0) <> coalesce(t.n, 0) ORDER BY 1"""
        ).fetchall()
        mismatches = {d.isoformat(): {"record": int(rec), "stored": int(n)} for d, rec, n in rows}
    return {"duplicate_tx_ids": duplicate_tx_ids(conn), "record_mismatches": mismatches, "record": has_record}


def day_content_hash(conn: duckdb.DuckDBPyConnection, day: dt.date, columns: Sequence[str] = CONTENT_COLUMNS) -> str:
    """A hash of the day's rows over `columns` (default: every chain column, not `ingested_at`), independent of
    row order. `schema.LISTING_COLUMNS` compares a day across listing strategies (v3 has no microblock_sequence)."""
    fields = ", ".join(f"coalesce(CAST({c} AS VARCHAR), '<null>')" for c in columns)
    row = conn.execute(
        f"SELECT md5(coalesce(string_agg(concat_ws('|', {fields}), chr(10) ORDER BY tx_id), '')) "
        f"FROM {TABLE} WHERE partition_date = ?",
        [day],
    ).fetchone()
    return str(row[0]) if row else ""


def stored_days(conn: duckdb.DuckDBPyConnection) -> dict[dt.date, int]:
    if not table_exists(conn):
        return {}
    return dict(conn.execute(f"SELECT partition_date, count(*) FROM {TABLE} GROUP BY 1 ORDER BY 1").fetchall())


def check_database_path(path: str | os.PathLike[str]) -> None:
    """Raise StorageError when `path` cannot hold the DuckDB file: checked on the file system, before any fetch.

    DuckDBResource retries any IOException on open for ~100 s, and a run would only open the file after
    fetching its first day; each of these is a configuration error that no retry fixes.
    """
    db_path = Path(path)
    if db_path.is_dir():
        raise StorageError(f"{db_path} is a directory, not a DuckDB database file")
    if db_path.is_file():
        with db_path.open("rb") as f:
            header = f.read(12)
        if header[8:12] != b"DUCK":
            raise StorageError(f"{db_path} exists but is not a DuckDB database file")
        if not (os.access(db_path, os.W_OK) and os.access(db_path.parent, os.W_OK)):  # the WAL goes beside it
            raise StorageError(f"{db_path} or its directory is read-only")
        return
    # No file yet: the nearest existing ancestor must be a directory we may create entries in.
    ancestor = db_path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise StorageError(f"cannot create {db_path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise StorageError(f"cannot create {db_path}: the directory {ancestor} is read-only")


@contextmanager
def connect_read_only(
    path: str | os.PathLike[str], timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the file read-only, waiting through writers' short lock windows; always closes.

    DuckDB lets one process hold a file read-write; every other process, readers included, gets a lock
    error meanwhile. Writes here last well under a second, so retrying with jitter hides them from users.
    """
    db_path = Path(path)
    if not db_path.exists():
        raise NothingStoredError(
            f"no database at {db_path}: nothing has been ingested yet (run a backfill first), "
            "or STX_DUCKDB_PATH points elsewhere"
        )
    wait_s = READ_LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_lock_error),
        wait=tenacity.wait_random_exponential(multiplier=0.05, max=1.0),
        stop=tenacity.stop_after_delay(wait_s),
        reraise=True,
    )
    try:
        conn = retrying(duckdb.connect, str(db_path), read_only=True)
    except duckdb.IOException as exc:
        if is_lock_error(exc):
            raise StorageError(
                f"{db_path} stayed locked by another process for {wait_s:.0f}s; a long write is "
                "running (or a stuck process holds the file): try again, or stop the process holding it"
            ) from exc
        raise StorageError(f"cannot open {db_path}: {exc}. Is it a DuckDB database file?") from exc
    except duckdb.Error as exc:
        raise StorageError(f"cannot open {db_path}: {exc}. Is it a DuckDB database file?") from exc
    try:
        yield conn
    finally:
        conn.close()
