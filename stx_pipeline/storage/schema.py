"""DDL of the transaction table: the one definition every reader and writer shares."""

from __future__ import annotations

TABLE = "stx_transactions"

# (column, DuckDB type). Order matters: writers insert in this order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("tx_id", "VARCHAR NOT NULL"),
    ("partition_date", "DATE NOT NULL"),
    ("block_height", "BIGINT NOT NULL"),
    ("block_hash", "VARCHAR"),
    ("block_time", "TIMESTAMPTZ"),
    ("burn_block_time", "TIMESTAMPTZ NOT NULL"),
    ("burn_block_height", "BIGINT"),
    ("tx_index", "INTEGER"),
    ("microblock_sequence", "BIGINT"),
    ("tx_type", "VARCHAR"),
    ("tx_status", "VARCHAR"),
    ("sender_address", "VARCHAR NOT NULL"),
    ("sponsored", "BOOLEAN"),
    ("sponsor_address", "VARCHAR"),
    ("fee_ustx", "BIGINT"),
    ("nonce", "BIGINT"),
    ("token_transfer_recipient", "VARCHAR"),
    ("token_transfer_amount_ustx", "BIGINT"),
    ("contract_id", "VARCHAR"),
    ("function_name", "VARCHAR"),
    ("ingested_at", "TIMESTAMPTZ NOT NULL"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)

# Columns that describe the chain; `ingested_at` is ours and excluded from content hashes.
CONTENT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMN_NAMES if c != "ingested_at")

# The chain columns both listings give. v3 summaries carry no `microblock_sequence` (stored NULL), while v1 gives
# 2147483647 for a transaction outside a microblock: comparing a day fetched through v1 with the same day fetched
# through v3 is only honest over these columns (docs/API_STRATEGIES.md, "microblock_sequence").
LISTING_COLUMNS: tuple[str, ...] = tuple(c for c in CONTENT_COLUMNS if c != "microblock_sequence")

CREATE_TABLE_SQL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (\n    "
    + ",\n    ".join(f"{name} {sql_type}" for name, sql_type in COLUMNS)
    + "\n)"
)
