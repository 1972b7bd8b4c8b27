"""Move the whole history between the DuckDB file and a DuckLake lake (`stx-pipeline migrate --to ...`).

One DuckDB process attaches both: the lake (as `lake`) and the file (as `duckdb_file`). The target's table is
replaced in ONE transaction (a failure leaves it as it was), then every day's row count and content hash
(`day_content_hash`, chain columns only) is compared between source and target on that same connection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import tenacity

from stx_pipeline.schema import COLUMN_NAMES, TABLE
from stx_pipeline.storage.backend import LAKE_ALIAS, DuckLakeStorage
from stx_pipeline.storage.duckdb_store import (
    WRITE_CONFLICT_RETRY,
    StorageError,
    day_content_hash,
    ensure_schema,
    is_lock_error,
    stored_days,
)

FILE_ALIAS = "duckdb_file"
TARGETS = ("ducklake", "duckdb")


@dataclass
class MigrationResult:
    source: str
    target: str
    days: int = 0
    rows: int = 0
    replaced_rows: int = 0  # rows the target held before
    mismatched_days: list[dt.date] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.mismatched_days


def _per_day(conn: duckdb.DuckDBPyConnection, alias: str) -> dict[dt.date, tuple[int, str]]:
    conn.execute(f"USE {alias}")
    return {day: (count, day_content_hash(conn, day)) for day, count in stored_days(conn).items()}


def migrate(duckdb_path: str | Path, lake: DuckLakeStorage, to: str, *, overwrite: bool = False) -> MigrationResult:
    """Copy every row from the other backend into `to` ("ducklake" or "duckdb"), then verify day by day.

    Refuses to replace a non-empty target unless `overwrite`: the target's rows are deleted first.
    Stop the pipeline's writers first: the DuckDB file must not be locked by a running ingestion.
    """
    if to not in TARGETS:
        raise StorageError(f"migrate --to must be one of {', '.join(TARGETS)}, not {to!r}")
    path = Path(duckdb_path).resolve()
    to_lake = to == "ducklake"
    if to_lake and not path.exists():
        raise StorageError(f"no DuckDB file at {path} to migrate from (STX_DUCKDB_PATH)")
    if not to_lake:
        path.parent.mkdir(parents=True, exist_ok=True)
    source_alias, target_alias = (FILE_ALIAS, LAKE_ALIAS) if to_lake else (LAKE_ALIAS, FILE_ALIAS)
    result = MigrationResult(
        source=str(path) if to_lake else lake.describe(), target=lake.describe() if to_lake else str(path)
    )
    # The lake is attached read-only when it is the source, so a migration back never writes to it.
    conn = lake.connect(read_only=not to_lake)
    try:
        try:
            quoted = str(path).replace("'", "''")
            conn.execute(f"ATTACH '{quoted}' AS {FILE_ALIAS}" + (" (READ_ONLY)" if to_lake else ""))
        except duckdb.Error as exc:
            hint = " (stop the pipeline first: a running ingestion holds the file)" if is_lock_error(exc) else ""
            raise StorageError(f"cannot open {path}: {exc}{hint}") from exc
        if not table_exists_in(conn, source_alias):
            raise StorageError(f"nothing to migrate: {result.source} has no {TABLE} table")
        conn.execute(f"USE {target_alias}")
        if table_exists_in(conn, target_alias):
            row = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
            result.replaced_rows = int(row[0]) if row else 0
        if result.replaced_rows and not overwrite:
            raise StorageError(
                f"{result.target} already holds {result.replaced_rows:,} rows: pass --overwrite to replace them"
            )
        columns = ", ".join(COLUMN_NAMES)

        def copy() -> None:
            conn.execute("BEGIN TRANSACTION")
            try:
                ensure_schema(conn)
                conn.execute(f"DELETE FROM {TABLE}")
                # Sorted by day: DuckLake writes its Parquet files in that order, so a day's rows sit together.
                conn.execute(
                    f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {source_alias}.{TABLE} "
                    "ORDER BY partition_date, tx_id"
                )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT ended it
                    conn.execute("ROLLBACK")
                raise

        tenacity.Retrying(**WRITE_CONFLICT_RETRY)(copy)  # type: ignore[arg-type]
        source_days = _per_day(conn, source_alias)
        target_days = _per_day(conn, target_alias)
    finally:
        conn.close()
    result.days = len(source_days)
    result.rows = sum(count for count, _ in source_days.values())
    result.mismatched_days = sorted(
        d for d in set(source_days) | set(target_days) if source_days.get(d) != target_days.get(d)
    )
    return result


def table_exists_in(conn: duckdb.DuckDBPyConnection, alias: str) -> bool:
    """`table_exists` limited to one attached database (information_schema lists them all)."""
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND table_name = ?", [alias, TABLE]
    ).fetchone()
    return bool(row and row[0])
