"""The transaction table: its name, its columns with their DuckDB and Arrow types, and the values it is read by.

The one definition the API side (`hiro/` builds Arrow tables in this schema) and the storage side (`storage/`
creates, writes and reads the table) share. It lives beside both rather than in either: `hiro/` must not load
DuckDB (importing `stx_pipeline.storage` does), and `storage/` does not depend on the API client. No import
but the standard library at module level: `stx-pipeline status` reads TABLE without paying for pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

TABLE = "stx_transactions"


@dataclass(frozen=True)
class Column:
    name: str
    sql: str  # DuckDB type, with NOT NULL where a row cannot exist without the value
    arrow: str  # pyarrow type alias; a TIMESTAMPTZ column's Arrow timestamp is in UTC

    @property
    def arrow_type(self) -> pa.DataType:
        import pyarrow as pa

        arrow_type = pa.type_for_alias(self.arrow)
        if self.sql.startswith("TIMESTAMPTZ"):
            return pa.timestamp(arrow_type.unit, tz="UTC")
        return arrow_type


# Order matters: writers insert in this order and Arrow tables are built in it.
COLUMNS: tuple[Column, ...] = (
    Column("tx_id", "VARCHAR NOT NULL", "string"),
    Column("partition_date", "DATE NOT NULL", "date32"),
    Column("block_height", "BIGINT NOT NULL", "int64"),
    Column("block_hash", "VARCHAR", "string"),
    Column("block_time", "TIMESTAMPTZ", "timestamp[s]"),  # the API's unix seconds
    Column("burn_block_time", "TIMESTAMPTZ NOT NULL", "timestamp[s]"),
    Column("burn_block_height", "BIGINT", "int64"),
    Column("tx_index", "INTEGER", "int32"),
    Column("microblock_sequence", "BIGINT", "int64"),
    Column("tx_type", "VARCHAR", "string"),
    Column("tx_status", "VARCHAR", "string"),
    Column("sender_address", "VARCHAR NOT NULL", "string"),
    Column("sponsored", "BOOLEAN", "bool"),
    Column("sponsor_address", "VARCHAR", "string"),
    Column("fee_ustx", "BIGINT", "int64"),
    Column("nonce", "BIGINT", "int64"),
    Column("token_transfer_recipient", "VARCHAR", "string"),
    Column("token_transfer_amount_ustx", "BIGINT", "int64"),
    Column("contract_id", "VARCHAR", "string"),
    Column("function_name", "VARCHAR", "string"),
    Column("ingested_at", "TIMESTAMPTZ NOT NULL", "timestamp[us]"),  # our clock, to the microsecond
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)

# Columns that describe the chain; `ingested_at` is ours and excluded from content hashes.
CONTENT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMN_NAMES if c != "ingested_at")

# The chain columns both listings give. v3 summaries carry no `microblock_sequence` (stored NULL), while v1 gives
# 2147483647 for a transaction outside a microblock: comparing a day fetched through v1 with the same day fetched
# through v3 is only honest over these columns (docs/API_STRATEGIES.md, "microblock_sequence").
LISTING_COLUMNS: tuple[str, ...] = tuple(c for c in CONTENT_COLUMNS if c != "microblock_sequence")

CREATE_TABLE_SQL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (\n    " + ",\n    ".join(f"{c.name} {c.sql}" for c in COLUMNS) + "\n)"
)

# The `tx_type` values a wallet sends (not coinbase, tenure changes or poison microblocks): the wallets counted by
# `status` and the dashboard.
USER_TX_TYPES: tuple[str, ...] = ("token_transfer", "contract_call", "smart_contract")


@cache
def arrow_schema() -> pa.Schema:
    """The table's columns as an Arrow schema (pyarrow is imported on first use only)."""
    import pyarrow as pa

    return pa.schema([(c.name, c.arrow_type) for c in COLUMNS])


# A day is the UTC date of block_time. Integer arithmetic on the epoch keeps it independent of
# the session TimeZone (a TIMESTAMPTZ -> DATE cast would use it) and is cheaper than ICU.
# burn_block_time stands in when block_time is unknown (NOT NULL in the schema, block_time is not).
DAY_EXPR = "(DATE '1970-01-01' + CAST(epoch_us(coalesce(block_time, burn_block_time)) // 86400000000 AS INTEGER))"

# Mined = included in a block, whatever the outcome (fees are paid either way). Mempool states
# are excluded explicitly so an unexpected new on-chain status still counts as activity.
MINED_EXPR = "(tx_status IS NULL OR (tx_status <> 'pending' AND NOT starts_with(tx_status, 'dropped')))"
