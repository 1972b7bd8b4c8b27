"""Record parsing and DuckDB day writes on a real database file."""

from __future__ import annotations

import datetime as dt
import time

import duckdb
import pyarrow as pa
import pytest

from stx_pipeline.days import day_window
from stx_pipeline.hiro import RecordError, records_to_table
from stx_pipeline.schema import COLUMN_NAMES, CREATE_TABLE_SQL, TABLE, arrow_schema
from stx_pipeline.storage import (
    StorageError,
    connect_read_only,
    day_content_hash,
    day_counts,
    duplicate_tx_ids,
    replace_day,
)
from stx_pipeline_tests.conftest import lock_held_by_another_process

DAY = dt.date(2025, 3, 1)
START, END = day_window(DAY)


def record(i: int, **overrides) -> dict:
    base = {
        "tx_id": f"0x{i:064x}",
        "tx_type": "contract_call",
        "tx_status": "success",
        "fee_rate": "3000",
        "nonce": i,
        "sender_address": f"SP{i:038d}",
        "sponsored": False,
        "block_hash": "0x" + "ab" * 32,
        "block_height": 1000 + i,
        "block_time": START + 60 + i,
        "burn_block_time": START + i,
        "burn_block_height": 880_000,
        "tx_index": 0,
        "microblock_sequence": 2147483647,
        "contract_call": {"contract_id": "SP000.amm-pool", "function_name": "swap-x-for-y"},
    }
    base.update(overrides)
    return base


def test_arrow_types_are_the_tables_types_in_duckdb():
    """The Arrow types records are built in land in DuckDB as exactly the DDL's types, column by column."""
    conn = duckdb.connect()
    conn.execute(CREATE_TABLE_SQL)
    incoming = arrow_schema().empty_table()  # noqa: F841 - scanned by name below
    as_arrow = conn.execute("DESCRIBE SELECT * FROM incoming").fetchall()
    as_table = conn.execute(f"DESCRIBE {TABLE}").fetchall()
    assert [(row[0], row[1]) for row in as_arrow] == [(row[0], row[1]) for row in as_table]
    assert tuple(row[0] for row in as_table) == COLUMN_NAMES


def test_record_to_row_values():
    transfer = record(
        1,
        tx_type="token_transfer",
        sponsored=True,
        sponsor_address="SPSPONSOR",
        fee_rate="18446744073709",
        token_transfer={"recipient_address": "SPRECIPIENT", "amount": "2500000", "memo": "0x"},
    )
    del transfer["contract_call"]
    table = records_to_table([transfer, record(2, tx_status="future_status", tx_type="new_kind")], DAY)
    rows = table.to_pylist()
    assert rows[0]["token_transfer_recipient"] == "SPRECIPIENT"
    assert rows[0]["token_transfer_amount_ustx"] == 2_500_000
    assert rows[0]["fee_ustx"] == 18_446_744_073_709
    assert rows[0]["sponsored"] is True and rows[0]["sponsor_address"] == "SPSPONSOR"
    assert rows[0]["burn_block_time"] == dt.datetime.fromtimestamp(START + 1, dt.UTC)
    assert rows[0]["partition_date"] == DAY
    assert rows[0]["contract_id"] is None
    # Unknown enum values are stored as they come.
    assert (rows[1]["tx_status"], rows[1]["tx_type"]) == ("future_status", "new_kind")


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"sender_address": None}, "sender_address", "is missing"),
        ({"tx_id": None}, "tx_id", "is missing"),
        ({"block_height": "1001"}, "block_height", "should be an integer"),
        ({"burn_block_time": 1.5}, "burn_block_time", "should be an integer"),
        ({"fee_rate": "12.5"}, "fee_rate", "decimal string"),
        ({"sponsored": "no"}, "sponsored", "boolean"),
        ({"burn_block_time": END}, "burn_block_time", "outside the day"),
    ],
)
def test_bad_records_name_partition_tx_and_field(change, field, problem):
    bad = record(7, **change)
    if change.get("tx_id", "") is None:
        del bad["tx_id"]
    with pytest.raises(RecordError) as info:
        records_to_table([record(1), bad], DAY, window=(START, END))
    message = str(info.value)
    assert f"partition {DAY}" in message
    assert f"field '{field}'" in message
    assert problem in message
    assert "offset 1" in message
    if "tx_id" not in change:
        assert bad["tx_id"] in message


def write(db, day, records):
    conn = duckdb.connect(str(db))
    try:
        return replace_day(conn, day, records_to_table(records, day))
    finally:
        conn.close()


def test_replace_day_is_idempotent_and_half_open(tmp_path):
    db = tmp_path / "t.duckdb"
    next_day = DAY + dt.timedelta(days=1)
    first_of_next = record(999, burn_block_time=END, block_height=5000)  # exactly midnight: next day
    write(db, DAY, [record(i) for i in range(120)])
    write(db, next_day, [first_of_next])
    conn = duckdb.connect(str(db))
    hash_before = day_content_hash(conn, DAY)
    conn.close()
    for _ in range(3):
        write(db, DAY, [record(i) for i in range(120)])
    conn = duckdb.connect(str(db))
    assert day_counts(conn, [DAY, next_day]) == {DAY: 120, next_day: 1}
    assert day_content_hash(conn, DAY) == hash_before
    assert duplicate_tx_ids(conn) == 0
    conn.close()


def test_replacing_a_day_with_fewer_rows_removes_the_stale_ones(tmp_path):
    db = tmp_path / "t.duckdb"
    write(db, DAY, [record(i) for i in range(10)])
    write(db, DAY, [record(i) for i in range(4)])
    conn = duckdb.connect(str(db))
    assert day_counts(conn, [DAY]) == {DAY: 4}
    conn.close()


def test_a_tx_moved_by_a_reorg_is_stored_once(tmp_path):
    db = tmp_path / "t.duckdb"
    next_day = DAY + dt.timedelta(days=1)
    write(db, DAY, [record(i) for i in range(5)])
    moved = record(3, burn_block_time=END + 10)
    write(db, next_day, [moved])
    conn = duckdb.connect(str(db))
    assert day_counts(conn, [DAY, next_day]) == {DAY: 4, next_day: 1}
    assert duplicate_tx_ids(conn) == 0
    conn.close()


def test_a_failed_write_keeps_the_old_day(tmp_path):
    db = tmp_path / "t.duckdb"
    write(db, DAY, [record(i) for i in range(10)])
    good = records_to_table([record(i) for i in range(20)], DAY)
    broken = good.set_column(COLUMN_NAMES.index("sender_address"), "sender_address", pa.array([None] * 20, pa.string()))
    conn = duckdb.connect(str(db))
    with pytest.raises(duckdb.ConstraintException):
        replace_day(conn, DAY, broken)  # NOT NULL fails on insert, after the delete
    assert day_counts(conn, [DAY]) == {DAY: 10}
    conn.close()


@pytest.mark.slow  # starts a process: another process holds the DuckDB lock
def test_read_only_connection_waits_through_a_write_window(tmp_path):
    db = tmp_path / "t.duckdb"
    write(db, DAY, [record(i) for i in range(3)])
    # A writer in a separate process holds the lock for ~1.5 s; the reader must wait, not fail.
    with lock_held_by_another_process(db, 1.5):
        started = time.monotonic()
        with connect_read_only(db) as conn:
            assert conn.execute("SELECT count(*) FROM stx_transactions").fetchone()[0] == 3
        assert time.monotonic() - started > 0.3


@pytest.mark.slow  # starts a process: another process holds the DuckDB lock
def test_read_only_gives_a_clear_error_for_missing_locked_and_foreign_files(tmp_path):
    with (
        pytest.raises(StorageError, match="nothing has been ingested yet"),
        connect_read_only(tmp_path / "n.duckdb"),
    ):
        pass
    foreign = tmp_path / "foreign.duckdb"
    foreign.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="Is it a DuckDB database file"), connect_read_only(foreign):
        pass
    db = tmp_path / "locked.duckdb"
    write(db, DAY, [record(1)])
    with (
        lock_held_by_another_process(db, 5),
        pytest.raises(StorageError, match="stayed locked"),
        connect_read_only(db, timeout_s=0.5),
    ):
        pass
