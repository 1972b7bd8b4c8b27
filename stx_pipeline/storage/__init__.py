"""DuckDB storage of the transaction history: schema, atomic day writes, read-only access with lock retry."""

from stx_pipeline.storage.duckdb_store import (
    NothingStoredError,
    StorageError,
    check_database_path,
    connect_read_only,
    day_content_hash,
    day_counts,
    duplicate_tx_ids,
    ensure_schema,
    is_lock_error,
    replace_day,
    stored_days,
    table_exists,
)

__all__ = [
    "NothingStoredError",
    "StorageError",
    "check_database_path",
    "connect_read_only",
    "day_content_hash",
    "day_counts",
    "duplicate_tx_ids",
    "ensure_schema",
    "is_lock_error",
    "replace_day",
    "stored_days",
    "table_exists",
]
