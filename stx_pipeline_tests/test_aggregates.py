"""The ingest record and the per-day aggregates on a real DuckDB file: written with each day, migrated onto an old
database, bounded checks, and aggregates equal to a from-scratch computation after any sequence of replaces."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from stx_pipeline.assets.aggregates import CHECK_MATCHES_RAW
from stx_pipeline.definitions import defs
from stx_pipeline.devtools.resources import pipeline_resources
from stx_pipeline.operations.status import build_report
from stx_pipeline.schema import CREATE_TABLE_SQL, TABLE, USER_TX_TYPES
from stx_pipeline.storage import duplicate_tx_ids, replace_day
from stx_pipeline.storage.activity_metrics import BOUNDS, COHORTS, DAILY, PERIODS, derive_all, stored_range
from stx_pipeline.storage.aggregates import (
    FIRST_SEEN,
    TYPE_DAY,
    TYPE_DAY_SELECT,
    WALLET_DAY,
    WALLET_DAY_SELECT,
    refresh_days,
    refresh_stale,
    stale_days,
)
from stx_pipeline.storage.duckdb_store import audit
from stx_pipeline.storage.ingest_record import RECORD_TABLE, DayListing, read_records

D0 = dt.date(2025, 3, 1)
# As the code location builds it from this environment (conftest: STX_START_DATE=2024-11-01).
LOCATION = defs()


def day_rows(conn: duckdb.DuckDBPyConnection, day: dt.date, n: int, seed: int, wallets: int = 7) -> pa.Table:
    """`n` transactions of `day` (tx_ids from `seed`), senders among `wallets` addresses, some system rows."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return conn.execute(
        """SELECT printf('0x%08d%08d', $seed, i) AS tx_id, CAST($day AS DATE) AS partition_date,
                   100 + i AS block_height, 'h' AS block_hash,
                   $start + to_seconds(i * 60 + 30) AS block_time, $start + to_seconds(i * 60) AS burn_block_time,
                   1 AS burn_block_height, CAST(i AS INTEGER) AS tx_index, NULL::BIGINT AS microblock_sequence,
                   CASE WHEN i % 5 = 0 THEN 'coinbase' WHEN i % 2 = 0 THEN 'token_transfer'
                        ELSE 'contract_call' END AS tx_type,
                   CASE WHEN i % 7 = 3 THEN 'abort_by_response' ELSE 'success' END AS tx_status,
                   'SP' || ((i * $seed) % $wallets) AS sender_address, false AS sponsored,
                   NULL AS sponsor_address, 100 + i * $seed AS fee_ustx, i AS nonce,
                   NULL AS token_transfer_recipient, NULL::BIGINT AS token_transfer_amount_ustx,
                   NULL AS contract_id, NULL AS function_name, now() AS ingested_at
            FROM range($n) t(i)""",
        {"seed": seed, "day": day, "start": start, "n": n, "wallets": wallets},
    ).to_arrow_table()


def _activity(conn: duckdb.DuckDBPyConnection, daily: str, periods: str, cohorts: str) -> dict[str, list[tuple]]:
    # Days up to the last wallet-day, without the all-zero days an incremental refresh need not write.
    last = conn.execute(f"SELECT max(day) FROM {WALLET_DAY}").fetchone()[0]
    return {
        "daily": conn.execute(
            f"SELECT * FROM {daily} WHERE day <= ? AND (active, mau) <> (0, 0) ORDER BY ALL", [last]
        ).fetchall(),
        "periods": conn.execute(f"SELECT * FROM {periods} ORDER BY ALL").fetchall(),
        "cohorts": conn.execute(f"SELECT * FROM {cohorts} ORDER BY ALL").fetchall(),
    }


def scratch(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """The aggregates and the activity tables computed from nothing over the whole raw table."""
    user_types = {"user_types": list(USER_TX_TYPES)}
    wallet_day = conn.execute(
        f"SELECT * FROM ({WALLET_DAY_SELECT.format(where='')}) ORDER BY ALL", user_types
    ).fetchall()
    type_day = conn.execute(f"SELECT * FROM ({TYPE_DAY_SELECT.format(where='')}) ORDER BY ALL").fetchall()
    conn.execute(f"CREATE OR REPLACE TEMP TABLE s_wd AS {WALLET_DAY_SELECT.format(where='')}", user_types)
    conn.execute("CREATE OR REPLACE TEMP TABLE s_fs AS SELECT address, min(day) AS first_day FROM s_wd GROUP BY 1")
    first = conn.execute("SELECT * FROM s_fs ORDER BY ALL").fetchall()
    names = {"daily": "s_daily", "periods": "s_periods", "cohorts": "s_cohorts"}
    derive_all(conn, "s_wd", "s_fs", names, stored_range(conn, RECORD_TABLE))
    activity = _activity(conn, *names.values())
    for name in ("s_wd", "s_fs", *names.values()):
        conn.execute(f"DROP TABLE temp.{name}")
    return {"wallet_day": wallet_day, "type_day": type_day, "first": first, **activity}


def kept(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """The persisted aggregates and activity tables, as refresh_days kept them."""
    return {
        "wallet_day": conn.execute(f"SELECT * FROM {WALLET_DAY} ORDER BY ALL").fetchall(),
        "type_day": conn.execute(f"SELECT * FROM {TYPE_DAY} ORDER BY ALL").fetchall(),
        "first": conn.execute(f"SELECT * FROM {FIRST_SEEN} ORDER BY ALL").fetchall(),
        **_activity(conn, DAILY, PERIODS, COHORTS),
    }


def test_the_record_is_written_with_the_day_and_recounts_a_neighbour_a_tx_left(tmp_path: Path):
    conn = duckdb.connect(str(tmp_path / "h.duckdb"))
    replace_day(conn, D0, day_rows(conn, D0, 10, 1), listing=DayListing(10, "v1", 1, 2))
    nxt = D0 + dt.timedelta(days=1)
    moved = day_rows(conn, D0, 10, 1).slice(9, 1)  # D0's last tx, now listed under the next day
    moved = moved.set_column(1, "partition_date", pa.array([nxt], pa.date32()))
    replace_day(conn, nxt, pa.concat_tables([day_rows(conn, nxt, 4, 2), moved]), listing=DayListing(5, "v3", 1, 9))
    rec = read_records(conn)
    assert (rec[D0]["rows"], rec[D0]["api_total"], rec[D0]["strategy"]) == (9, 10, "v1")
    assert (rec[nxt]["rows"], rec[nxt]["api_total"], rec[nxt]["requests"]) == (5, 5, 9)
    assert rec[D0]["changed_at"] == rec[nxt]["changed_at"]  # the move made D0 stale in the same transaction
    assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 14


def test_an_old_database_gets_its_record_from_its_rows_on_the_next_write(tmp_path: Path):
    conn = duckdb.connect(str(tmp_path / "old.duckdb"))
    conn.execute(CREATE_TABLE_SQL)
    for i in range(3):
        day = D0 + dt.timedelta(days=i)
        conn.register("t", day_rows(conn, day, 5 + i, 10 + i))
        conn.execute(f"INSERT INTO {TABLE} SELECT * FROM t")
        conn.unregister("t")
    assert (
        conn.execute(f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{RECORD_TABLE}'").fetchone()[
            0
        ]
        == 0
    )
    replace_day(conn, D0 + dt.timedelta(days=5), day_rows(conn, D0 + dt.timedelta(days=5), 2, 30))
    rows = {d: r["rows"] for d, r in read_records(conn).items()}
    assert rows == {D0: 5, D0 + dt.timedelta(days=1): 6, D0 + dt.timedelta(days=2): 7, D0 + dt.timedelta(days=5): 2}
    conn.close()
    report = build_report(
        tmp_path / "old.duckdb", 3, with_instance=False, window=[D0 + dt.timedelta(days=i) for i in range(3)]
    )
    assert (report.total_transactions, report.days_covered, report.unique_wallets) == (20, 3, None)


def test_the_run_check_sees_duplicates_within_its_reach_and_the_audit_everywhere(tmp_path: Path):
    conn = duckdb.connect(str(tmp_path / "d.duckdb"))
    far = D0 + dt.timedelta(days=30)
    replace_day(conn, D0, day_rows(conn, D0, 5, 1))
    replace_day(conn, far, day_rows(conn, far, 5, 2))
    dup = day_rows(conn, D0, 5, 1).slice(0, 1).set_column(1, "partition_date", pa.array([far], pa.date32()))
    conn.register("dup", dup)
    conn.execute(f"INSERT INTO {TABLE} SELECT * FROM dup")  # a duplicate no replace_day could have made
    assert duplicate_tx_ids(conn) == 1  # the audit
    assert duplicate_tx_ids(conn, [far]) == 0  # D0 lies beyond the reorg reach of a run of `far`
    assert duplicate_tx_ids(conn, [D0, far]) == 1
    # Both copies must lie in the reach: D0 + 2 days reaches D0 but not `far`.
    assert duplicate_tx_ids(conn, [D0 + dt.timedelta(days=2)]) == 0
    # The audit on demand: the duplicate, and the day whose record no longer matches its rows.
    assert audit(conn) == {
        "duplicate_tx_ids": 1,
        "record_mismatches": {far.isoformat(): {"record": 5, "stored": 6}},
        "record": True,
    }


def test_aggregates_equal_a_from_scratch_computation_after_any_sequence_of_replaces(tmp_path: Path):
    conn = duckdb.connect(str(tmp_path / "a.duckdb"))
    days = [D0 + dt.timedelta(days=i) for i in range(6)]
    for i, day in enumerate(days):
        replace_day(conn, day, day_rows(conn, day, 20 + i, 3 + i))
    assert refresh_stale(conn) == days
    assert kept(conn) == scratch(conn) and stale_days(conn) == []
    first_before = dict(kept(conn)["first"])

    # An old day re-fetched with new wallets: their first-seen date moves back to it.
    replace_day(conn, days[1], day_rows(conn, days[1], 25, 97, wallets=40))
    # A later re-fetch of the oldest day with fewer wallets: some first-seen dates move later.
    replace_day(conn, days[0], day_rows(conn, days[0], 3, 55, wallets=2))
    replace_day(conn, days[4], day_rows(conn, days[4], 30, 11))
    assert stale_days(conn) == [days[0], days[1], days[4]]
    assert refresh_stale(conn) == [days[0], days[1], days[4]]
    assert kept(conn) == scratch(conn) and stale_days(conn) == []
    first_after = dict(kept(conn)["first"])
    assert any(first_after.get(a) == days[1] and a not in first_before for a in first_after)  # new wallets
    assert any(first_before[a] == days[0] and first_after[a] > days[0] for a in first_before if a in first_after)

    # A reorg moves a tx out of day 3 into day 2: both partitions are stale, and refreshed equal scratch.
    moved = (
        day_rows(conn, days[3], 23 + 3, 6).slice(1, 1).set_column(1, "partition_date", pa.array([days[2]], pa.date32()))
    )
    replace_day(conn, days[2], pa.concat_tables([day_rows(conn, days[2], 22, 5), moved]))
    assert stale_days(conn) == [days[2], days[3]]
    refresh_stale(conn)
    assert kept(conn) == scratch(conn)


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_a_refetched_old_day_moves_cohorts_in_weeks_it_did_not_touch(tmp_path: Path):
    """Three weeks of days; then the first days are re-fetched without most of their wallets, whose first-seen dates
    move to a later week: their cohort cells in the untouched later weeks move with them (equal to scratch), and
    a re-fetch that adds them back moves them again."""
    conn = duckdb.connect(str(tmp_path / "c.duckdb"))
    days = [D0 + dt.timedelta(days=i) for i in range(21)]  # 2025-03-01 (Sat) .. 03-21
    for i, day in enumerate(days):
        replace_day(conn, day, day_rows(conn, day, 20, 3 + i, wallets=9))
    limit = conn.execute("SELECT current_setting('memory_limit')").fetchone()
    # Built in chunks of 4 days (a history from nothing, in small): chunk boundaries change nothing.
    assert refresh_days(conn, stale_days(conn), chunk_days=4) == days
    assert conn.execute("SELECT current_setting('memory_limit')").fetchone() == limit  # the caller's, restored
    assert kept(conn) == scratch(conn)
    before = dict(kept(conn)["first"])
    cells_before = kept(conn)["cohorts"]

    # The week's first two days (Sat, Sun) re-fetched with one wallet left.
    replace_day(conn, days[0], day_rows(conn, days[0], 2, 500, wallets=1))
    replace_day(conn, days[1], day_rows(conn, days[1], 2, 501, wallets=1))
    assert refresh_stale(conn) == days[:2]
    assert kept(conn) == scratch(conn)
    after = dict(kept(conn)["first"])
    moved = [a for a in before if before[a] == days[0] and after.get(a, days[0]) >= days[2]]
    assert moved  # first seen in week 02-24 before, in week 03-03 or later now
    untouched = {c for c in cells_before if c[1] >= dt.date(2025, 3, 10)}
    assert untouched - set(kept(conn)["cohorts"])  # cells of weeks the re-fetch never touched changed

    for i in (0, 1):  # the original content again
        replace_day(conn, days[i], day_rows(conn, days[i], 20, 3 + i, wallets=9))
    refresh_stale(conn)
    assert kept(conn) == scratch(conn)
    assert dict(kept(conn)["first"]) == before and kept(conn)["cohorts"] == cells_before


@pytest.mark.parametrize("seed", range(3))
def test_random_replaces_moving_first_days_across_weeks_equal_scratch(tmp_path: Path, seed: int):
    """Random re-fetches over four weeks, with few or many wallets: first days move later, earlier and away, across
    weeks (the cohort cells move by one per wallet, the first-seen rescan reads the moved wallets' days once); after
    each refresh every table equals its from-scratch form."""
    rng = random.Random(seed)
    conn = duckdb.connect(str(tmp_path / f"r{seed}.duckdb"))
    moved = None  # wallets whose first day moved, once built
    for step in range(30):
        day = D0 + dt.timedelta(days=rng.randint(0, 27))
        rows = day_rows(conn, day, rng.randint(2, 12), rng.randint(1, 60), rng.choice([1, 3, 9, 30]))
        if rng.random() < 0.5:  # a wallet's transaction mined after midnight: its block-time day is the next one
            late = rows.slice(1, 1)  # a contract call (row 0 is a coinbase)
            late = late.set_column(0, "tx_id", pa.array([late["tx_id"][0].as_py() + "-late"]))
            at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 2), dt.UTC)
            late = late.set_column(4, "block_time", pa.array([at], late.schema.field("block_time").type))
            rows = pa.concat_tables([rows, late])
        replace_day(conn, day, rows)
        if rng.random() < 0.7:
            before = dict(kept(conn)["first"]) if moved is not None else {}
            refresh_stale(conn)
            assert kept(conn) == scratch(conn), (seed, step, day)
            # The daily figures by their definition too (scratch shares derive_daily's shortcut): distinct wallets
            # on the day, and in the 30 days ending on it.
            brute = conn.execute(
                f"""SELECT d.day, count(DISTINCT w.address) FILTER (WHERE w.day = d.day), count(DISTINCT w.address)
                    FROM (SELECT DISTINCT day FROM {WALLET_DAY}) d
                    JOIN {WALLET_DAY} w ON w.day BETWEEN d.day - 29 AND d.day GROUP BY d.day ORDER BY d.day"""
            ).fetchall()
            daily = conn.execute(
                f"SELECT * FROM {DAILY} WHERE day IN (SELECT day FROM {WALLET_DAY}) ORDER BY day"
            ).fetchall()
            assert daily == brute, (seed, step, day)
            after = dict(kept(conn)["first"])
            moved = (moved or 0) + sum(1 for a, d in before.items() if after.get(a) != d)
    assert moved  # the sequence did move first days


def test_aggregates_built_before_the_activity_tables_are_rebuilt_whole(tmp_path: Path):
    """A database whose aggregates predate the activity tables (last session's): the next refresh marks every
    partition unbuilt in one transaction and rebuilds them all, not only the stale ones."""
    conn = duckdb.connect(str(tmp_path / "m.duckdb"))
    days = [D0 + dt.timedelta(days=i) for i in range(5)]
    for i, day in enumerate(days):
        replace_day(conn, day, day_rows(conn, day, 15, 40 + i))
    refresh_stale(conn)
    for table in (DAILY, PERIODS, COHORTS, BOUNDS):
        conn.execute(f"DROP TABLE {table}")
    assert stale_days(conn) == days  # no activity tables: nothing counts as built
    replace_day(conn, days[2], day_rows(conn, days[2], 9, 77))
    assert refresh_days(conn, [days[2]]) == days  # the asset asked for one day; all five were rebuilt
    assert stale_days(conn) == [] and kept(conn) == scratch(conn)


def raw_only_copy(conn: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyConnection:
    """A database holding only the raw table's rows: the dashboard computes everything from them."""
    copy = duckdb.connect(str(path))
    copy.execute(CREATE_TABLE_SQL)
    copy.register("raw", conn.execute(f"SELECT * FROM {TABLE}").to_arrow_table())
    copy.execute(f"INSERT INTO {TABLE} SELECT * FROM raw")
    return copy


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_the_dashboard_is_the_same_from_aggregates_and_from_the_raw_table(tmp_path: Path):
    from stx_pipeline.dashboard import build_dashboard_from_path, compute_all

    db = tmp_path / "h.duckdb"
    conn = duckdb.connect(str(db))
    days = [D0 + dt.timedelta(days=i) for i in range(40)]
    for i, day in enumerate(days):
        replace_day(conn, day, day_rows(conn, day, 30 + i % 7, 1000 + i, wallets=25 + i))
    refresh_stale(conn)
    # An old day re-fetched with different content, and a new day: the aggregates are stale until refreshed.
    replace_day(conn, days[3], day_rows(conn, days[3], 12, 5000, wallets=90))
    new_day = days[-1] + dt.timedelta(days=1)
    replace_day(conn, new_day, day_rows(conn, new_day, 33, 6000, wallets=70))
    assert stale_days(conn) == [days[3], new_day]
    conn.close()

    built_at = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    first = build_dashboard_from_path(db, tmp_path / "site", built_at)  # refreshes the two days, then builds
    conn = duckdb.connect(str(db))
    assert stale_days(conn) == [] and kept(conn) == scratch(conn)
    from_aggregates = compute_all(conn)
    raw = raw_only_copy(conn, tmp_path / "raw.duckdb")
    from_raw = compute_all(raw)
    assert from_aggregates == from_raw
    assert from_aggregates.totals.transactions == sum(30 + i % 7 for i in range(40)) - (30 + 3 % 7) + 12 + 33
    assert any(c.new for c in from_aggregates.daily if c.day == days[3])  # wallets first seen on the re-fetched day
    raw.close()
    conn.close()
    # The raw-only copy builds its own aggregates from nothing first: the same page, byte for byte.
    second = build_dashboard_from_path(tmp_path / "raw.duckdb", tmp_path / "site2", built_at)
    assert first.path.read_text() == second.path.read_text()


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_the_asset_builds_its_partitions_after_the_raw_days_and_checks_them(simulator, small_chain, db_path):
    """stx_transactions then wallet_day_activity over the same two partitions, in-process against the simulator:
    the ingest record holds the API's totals, and the aggregates equal a from-scratch computation."""
    assets = [LOCATION.get_assets_def("stx_transactions"), LOCATION.get_assets_def("wallet_day_activity")]
    wanted = [dt.date(2025, 3, 1), dt.date(2025, 3, 2)]
    result = dg.materialize(
        assets,
        resources=pipeline_resources(simulator.url, db_path),
        tags={"dagster/asset_partition_range_start": "2025-03-01", "dagster/asset_partition_range_end": "2025-03-02"},
    )
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks[CHECK_MATCHES_RAW] is True
    with duckdb.connect(str(db_path), read_only=True) as conn:
        records = read_records(conn)
        assert {d: (r["rows"], r["api_total"]) for d, r in records.items()} == {
            d: (small_chain.day_total(d), small_chain.day_total(d)) for d in wanted
        }
        assert all(r["strategy"] == "v1" and r["requests"] >= r["pages"] >= 1 for r in records.values())
        assert stale_days(conn) == [] and kept(conn) == scratch(conn)


def test_status_reads_the_record_and_leaves_an_instance_without_webserver_unread(tmp_path: Path, monkeypatch):
    """With an instance on disk and no webserver answering, status answers from the record alone and says how to
    read the instance (it would import Dagster); the totals come from the record, wallets from the aggregates."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing answers there
    home = tmp_path / "home"
    (home / ".dagster" / "storage").mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("STX_UI_URL", f"http://127.0.0.1:{port}")
    db = tmp_path / "s.duckdb"
    conn = duckdb.connect(str(db))
    days = [D0 + dt.timedelta(days=i) for i in range(4)]
    for i, day in enumerate(days):
        replace_day(conn, day, day_rows(conn, day, 10 + i, 70 + i, wallets=5 + i))
    refresh_stale(conn)
    wallets = conn.execute(f"SELECT count(*) FROM {FIRST_SEEN}").fetchone()[0]
    conn.close()
    window = [D0 - dt.timedelta(days=1), *days]
    report = build_report(db, len(window), window=window)
    assert report.instance_source is None and "--instance" in (report.instance_note or "")
    assert (report.total_transactions, report.days_covered, report.unique_wallets) == (46, 4, wallets)
    assert report.missing_in_storage == [(D0 - dt.timedelta(days=1)).isoformat()]
    assert report.earliest_transaction == dt.datetime.combine(D0, dt.time(), dt.UTC).isoformat()
