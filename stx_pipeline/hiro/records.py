"""Hiro v1 transaction objects -> typed columns (an Arrow table in the storage schema's column order).

Records are untrusted input: a missing required field or a wrong type raises RecordError naming the
partition, the tx_id (or offset) and the field, so that the whole day is refused rather than half-stored.
Unknown `tx_type` / `tx_status` values are kept as they come: the API adds new ones over time.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from stx_pipeline.hiro.errors import RecordError

# A day's table is built from thousands of page tables. pyarrow's default allocator (mimalloc) keeps the pages'
# freed memory, which took a 100,000-transaction run from 337 to 428 MiB peak; the system allocator returns it.
# An explicit ARROW_DEFAULT_MEMORY_POOL still wins.
if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
    pa.set_memory_pool(pa.system_memory_pool())

ARROW_SCHEMA = pa.schema(
    [
        ("tx_id", pa.string()),
        ("partition_date", pa.date32()),
        ("block_height", pa.int64()),
        ("block_hash", pa.string()),
        ("block_time", pa.timestamp("s", tz="UTC")),
        ("burn_block_time", pa.timestamp("s", tz="UTC")),
        ("burn_block_height", pa.int64()),
        ("tx_index", pa.int32()),
        ("microblock_sequence", pa.int64()),
        ("tx_type", pa.string()),
        ("tx_status", pa.string()),
        ("sender_address", pa.string()),
        ("sponsored", pa.bool_()),
        ("sponsor_address", pa.string()),
        ("fee_ustx", pa.int64()),
        ("nonce", pa.int64()),
        ("token_transfer_recipient", pa.string()),
        ("token_transfer_amount_ustx", pa.int64()),
        ("contract_id", pa.string()),
        ("function_name", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


class _Where:
    """Names the record being read, for error messages."""

    __slots__ = ("offset", "partition", "tx_id")

    def __init__(self, partition: str, offset: int) -> None:
        self.partition = partition
        self.offset = offset
        self.tx_id: str | None = None

    def fail(self, field: str, problem: str) -> RecordError:
        who = f"transaction {self.tx_id}" if self.tx_id else "the transaction"
        return RecordError(
            f"partition {self.partition}: {who} at offset {self.offset}: field '{field}' {problem}. "
            "The API sent a record this pipeline cannot store; nothing of this day was written. "
            "Re-run the partition later; if it persists, the API changed: report it with this message."
        )


def _int(record: dict[str, Any], field: str, where: _Where, *, required: bool = False) -> int | None:
    value = record.get(field)
    if value is None:
        if required:
            raise where.fail(field, "is missing")
        return None
    # bool is an int in Python; the API never sends one for these fields.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise where.fail(field, f"should be an integer, got {type(value).__name__} {str(value)[:40]!r}")


def _str(record: dict[str, Any], field: str, where: _Where, *, required: bool = False) -> str | None:
    value = record.get(field)
    if value is None:
        if required:
            raise where.fail(field, "is missing")
        return None
    if isinstance(value, str):
        if required and not value:
            raise where.fail(field, "is empty")
        return value
    raise where.fail(field, f"should be a string, got {type(value).__name__}")


def _ustx(value: Any, field: str, where: _Where) -> int | None:
    """Micro-STX amounts come as decimal strings (they can exceed JavaScript's safe integers)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise where.fail(field, f"should be a decimal string of micro-STX, got {str(value)[:40]!r}")


def records_to_table(
    records: Sequence[dict[str, Any]],
    partition: dt.date,
    *,
    window: tuple[int, int] | None = None,
    ingested_at: dt.datetime | None = None,
    offset_base: int = 0,
) -> pa.Table:
    """Validate and convert records of one day (a page or all); `window` = [start, end) unix seconds on
    burn_block_time; `offset_base` is the offset of the first record in the day's listing (for errors)."""
    label = partition.isoformat()
    ingested = ingested_at or dt.datetime.now(dt.UTC)
    cols: dict[str, list[Any]] = {
        name: [] for name in ARROW_SCHEMA.names if name not in ("partition_date", "ingested_at")
    }
    for offset, record in enumerate(records, start=offset_base):
        where = _Where(label, offset)
        if not isinstance(record, dict):
            raise where.fail("(record)", f"should be an object, got {type(record).__name__}")
        where.tx_id = _str(record, "tx_id", where, required=True)
        tx_type = _str(record, "tx_type", where)
        burn_time = _int(record, "burn_block_time", where, required=True)
        if window is not None and not (window[0] <= burn_time < window[1]):  # type: ignore[operator]
            raise where.fail("burn_block_time", f"= {burn_time} lies outside the day's window {window}")
        contract_id = function_name = recipient = None
        amount = None
        if tx_type == "contract_call":
            payload = record.get("contract_call") or {}
            contract_id = _str(payload, "contract_id", where)
            function_name = _str(payload, "function_name", where)
        elif tx_type == "smart_contract":
            payload = record.get("smart_contract") or {}
            contract_id = _str(payload, "contract_id", where)
        elif tx_type == "token_transfer":
            payload = record.get("token_transfer") or {}
            recipient = _str(payload, "recipient_address", where)
            amount = _ustx(payload.get("amount"), "token_transfer.amount", where)
        sponsored = record.get("sponsored")
        if sponsored is not None and not isinstance(sponsored, bool):
            raise where.fail("sponsored", f"should be a boolean, got {type(sponsored).__name__}")

        cols["tx_id"].append(where.tx_id)
        cols["block_height"].append(_int(record, "block_height", where, required=True))
        cols["block_hash"].append(_str(record, "block_hash", where))
        cols["block_time"].append(_int(record, "block_time", where))
        cols["burn_block_time"].append(burn_time)
        cols["burn_block_height"].append(_int(record, "burn_block_height", where))
        cols["tx_index"].append(_int(record, "tx_index", where))
        cols["microblock_sequence"].append(_int(record, "microblock_sequence", where))
        cols["tx_type"].append(tx_type)
        cols["tx_status"].append(_str(record, "tx_status", where))
        cols["sender_address"].append(_str(record, "sender_address", where, required=True))
        cols["sponsored"].append(sponsored)
        cols["sponsor_address"].append(_str(record, "sponsor_address", where))
        cols["fee_ustx"].append(_ustx(record.get("fee_rate"), "fee_rate", where))
        cols["nonce"].append(_int(record, "nonce", where))
        cols["token_transfer_recipient"].append(recipient)
        cols["token_transfer_amount_ustx"].append(amount)
        cols["contract_id"].append(contract_id)
        cols["function_name"].append(function_name)

    n = len(records)
    arrays = []
    for column in ARROW_SCHEMA:
        if column.name == "partition_date":
            arrays.append(pa.array([partition] * n, type=column.type))
        elif column.name == "ingested_at":
            arrays.append(pa.array([ingested] * n, type=column.type))
        elif column.type == pa.timestamp("s", tz="UTC"):
            # Unix seconds -> timestamps without a Python datetime per row.
            arrays.append(pa.array(cols[column.name], type=pa.int64()).cast(column.type))
        else:
            arrays.append(pa.array(cols[column.name], type=column.type))
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
