"""The aggregates built from nothing (storage/rebuild.py) on real DuckDB files: the same rows as the incremental
path and as the from-scratch references, and whole or nothing when the build fails midway."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from stx_pipeline.schema import TABLE, arrow_schema
from stx_pipeline.storage import replace_day
from stx_pipeline.storage.activity_metrics import BOUNDS, COHORTS, DAILY, PERIODS
from stx_pipeline.storage.aggregates import BUILT, refresh_days, refresh_stale, stale_days
from stx_pipeline.storage.ingest_record import has_table
from stx_pipeline.storage.rebuild import TABLES, build_all
from stx_pipeline_tests import test_aggregates as agg_ref
from stx_pipeline_tests import test_value_metrics as value_ref
from stx_pipeline_tests.test_value_metrics import random_day, tx

BASE = dt.date(2025, 1, 1)


def history(seed: int) -> list[tuple[dt.date, list[dict]]]:
    """Writes in order: ~40 days of a few transactions among 8 addresses (sponsored, failed, transfers to
    recipients, some mined after midnight: two partitions per block-time day), then some days re-fetched with
    other content (a wallet can lose its first day)."""
    rng = random.Random(seed)
    writes = [(BASE + dt.timedelta(days=i), random_day(rng, BASE + dt.timedelta(days=i))) for i in range(40)]
    for _ in range(6):
        day = BASE + dt.timedelta(days=rng.randint(0, 39))
        writes.append((day, random_day(rng, day)))
    return writes


def write(conn: duckdb.DuckDBPyConnection, day: dt.date, rows: list[dict]) -> None:
    replace_day(conn, day, pa.Table.from_pylist(rows, schema=arrow_schema()))


def tables(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every table the build fills, in order; agg_built without its timestamps (each file wrote its own)."""
    out = {}
    for table in TABLES:
        sql = f"SELECT * FROM {table}"
        if table == BUILT:
            sql = f"SELECT partition_date FROM {table}"
        elif table == DAILY:  # the all-zero days an incremental refresh need not write (test_aggregates._activity)
            sql += " WHERE (active, mau) <> (0, 0)"
        out[table] = conn.execute(f"SELECT * FROM ({sql}) ORDER BY ALL").fetchall()
    return out


# One seed in the fast tier; each takes ~13 s (two databases, 46 day writes each): the others in `make test`.
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_from_nothing_equals_the_incremental_path_and_the_from_scratch_references(tmp_path: Path, seed: int):
    writes = history(seed)
    incremental = duckdb.connect(str(tmp_path / "incremental.duckdb"))
    for day, rows in writes:  # a refresh after each write: the incremental path throughout
        write(incremental, day, rows)
        refresh_stale(incremental)
    rebuilt = duckdb.connect(str(tmp_path / "rebuilt.duckdb"))
    for day, rows in writes:
        write(rebuilt, day, rows)
    days = sorted({d for d, _ in writes})
    # Nothing built and more days than one chunk: the rebuild, which builds every recorded day whatever was asked.
    assert refresh_days(rebuilt, days[:5], chunk_days=2) == days
    assert not stale_days(rebuilt)
    kept = tables(rebuilt)
    assert kept == tables(incremental)
    assert len(kept["agg_wallet_day"]) > 40 and len(kept["wallet_value"]) == 8  # not vacuously equal
    # Sponsors, recipients and next-day spills are in the data the two paths agreed on.
    facts = rebuilt.execute(
        f"""SELECT count(*) FILTER (WHERE sponsored), count(*) FILTER (WHERE token_transfer_recipient IS NOT NULL),
                   count(*) FILTER (WHERE CAST(block_time AS DATE) <> partition_date) FROM {TABLE}"""
    ).fetchone()
    assert all(n > 0 for n in facts), facts
    assert agg_ref.kept(rebuilt) == agg_ref.scratch(rebuilt)
    assert value_ref.kept(rebuilt) == value_ref.scratch(rebuilt)
    # A refresh after the build takes the incremental path on top of it and stays equal.
    day, rows = BASE + dt.timedelta(days=3), random_day(random.Random(seed + 100), BASE + dt.timedelta(days=3))
    for conn in (incremental, rebuilt):
        write(conn, day, rows)
        assert refresh_stale(conn) == [day]
    assert tables(rebuilt) == tables(incremental)


def test_a_build_that_fails_midway_leaves_no_aggregates(tmp_path: Path):
    conn = duckdb.connect(str(tmp_path / "bad.duckdb"))
    days = [BASE + dt.timedelta(days=i) for i in range(9)]
    for day in days:
        write(conn, day, [tx(day, "SPA", fee=1_000), tx(day, "SPB", "token_transfer", 500, to="SPA", amount=7)])
    # The last day: one wallet's two fees sum past BIGINT, so the per-wallet-day fee CAST fails, in the last
    # chunk of the raw-table pass, after the earlier chunks' rows were inserted.
    huge = 2**62
    write(conn, days[-1], [tx(days[-1], "SPC", fee=huge), tx(days[-1], "SPC", fee=huge)])
    spent: dict[str, float] = {}
    with pytest.raises(duckdb.ConversionException, match=r"INT64|BIGINT|out of range"):
        build_all(conn, spent, chunk_days=3)
    assert "wallet_day" in spent  # the first chunks were written before the failure
    for table in (*TABLES, BOUNDS, DAILY, PERIODS, COHORTS):
        assert not has_table(conn, table) or conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    assert stale_days(conn) == days  # every day still to build: the next refresh starts again from nothing
    # Through the dispatch, the same: nothing kept, the raw rows untouched.
    with pytest.raises(duckdb.ConversionException):
        refresh_days(conn, days, chunk_days=2)
    assert stale_days(conn) == days
    assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (8 * 2 + 2,)
