"""Dashboard metrics against a small hand-made history with hand-computed expectations.

History: 2025-03-01 (Sat) .. 2025-04-09 (Wed), partitions 2025-04-02..04 missing. A miner
(coinbase every stored day, one tenure_change with a fee) and wallets:
  A  03-01, 03-03 (2 tx), 03-10 (aborted), 04-01, 04-09
  B  03-01 only, aborted (failed statuses still count as activity)
  C  03-05 (deploy), 03-12, 03-26
  D  03-11 (block_time NULL: burn time stands in), 04-08 (2 tx, one aborted)
  E  04-09 only
  F  a dropped (never mined) transaction: not a wallet
  G  stored in partition 04-09 but mined at 04-10 00:00:30: after the last stored day
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stx_pipeline.dashboard import metrics
from stx_pipeline.dashboard.models import DashboardData
from stx_pipeline.schema import COLUMN_NAMES, CREATE_TABLE_SQL, TABLE
from stx_pipeline.storage.aggregates import aggregates_fresh, refresh_stale

D = date.fromisoformat
AMM = "SP1AMM.amm-pool"
HOSTILE_CONTRACT = 'SP2EVIL.<script>alert("x")</script>"\''
HOSTILE_FUNCTION = "</script><script>"
A, B, C, E_, D_, F, G = (f"SP{c}WALLET" for c in "ABCEDFG")
MINER = "SPMINER"
FIRST, LAST = D("2025-03-01"), D("2025-04-09")
GAP = (D("2025-04-02"), D("2025-04-03"), D("2025-04-04"))

_ids = itertools.count()


def tx(
    day: date,
    sender: str,
    tx_type: str = "token_transfer",
    status: str = "success",
    fee: int = 0,
    contract: str | None = None,
    function: str | None = None,
    *,
    block_time: datetime | str | None = "noon",
    partition: date | None = None,
) -> dict[str, Any]:
    """One row of stx_transactions; the block is mined at noon UTC unless told otherwise."""
    bt = datetime.combine(day, time(12), UTC) if block_time == "noon" else block_time
    burn = (bt or datetime.combine(day, time(12), UTC)) - timedelta(minutes=5)
    n = next(_ids)
    return {
        "tx_id": f"0x{n:064x}",
        "partition_date": partition or burn.date(),
        "block_height": 1000 + n,
        "block_hash": f"0xb{n}",
        "block_time": bt,
        "burn_block_time": burn,
        "burn_block_height": 800000 + n,
        "tx_index": 0,
        "microblock_sequence": None,
        "tx_type": tx_type,
        "tx_status": status,
        "sender_address": sender,
        "sponsored": False,
        "sponsor_address": None,
        "fee_ustx": fee,
        "nonce": n,
        "token_transfer_recipient": None,
        "token_transfer_amount_ustx": 1 if tx_type == "token_transfer" else None,
        "contract_id": contract,
        "function_name": function,
        "ingested_at": datetime(2025, 4, 10, tzinfo=UTC),
    }


def fixture_rows() -> list[dict[str, Any]]:
    rows = [
        tx(day, MINER, "coinbase")
        for day in (FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1))
        if day not in GAP
    ]
    rows += [
        tx(FIRST, MINER, "tenure_change", fee=50),
        tx(D("2025-03-01"), A, fee=1000),
        tx(D("2025-03-03"), A, "contract_call", fee=2000, contract=AMM, function="swap"),
        tx(D("2025-03-03"), A, "contract_call", fee=2000, contract=AMM, function="swap"),
        tx(D("2025-03-10"), A, "contract_call", "abort_by_post_condition", 3000, AMM, "swap"),
        tx(D("2025-04-01"), A, "contract_call", fee=4000, contract=HOSTILE_CONTRACT, function="hostile"),
        tx(D("2025-04-09"), A, fee=5000),
        tx(D("2025-03-01"), B, "contract_call", "abort_by_response", 500, AMM, "swap"),
        tx(D("2025-03-05"), C, "smart_contract", fee=10000, contract="SPCWALLET.c-token"),
        tx(D("2025-03-12"), C, "contract_call", fee=1000, contract=AMM, function="add-liquidity"),
        tx(
            D("2025-03-26"),
            C,
            "contract_call",
            fee=1000,
            contract=HOSTILE_CONTRACT,
            function=HOSTILE_FUNCTION,
        ),
        tx(D("2025-03-11"), D_, fee=200, block_time=None, partition=D("2025-03-11")),
        tx(D("2025-04-08"), D_, "contract_call", fee=300, contract=AMM, function="swap"),
        tx(D("2025-04-08"), D_, "contract_call", "abort_by_response", 300, HOSTILE_CONTRACT, "x"),
        tx(D("2025-04-09"), E_, "contract_call", fee=700, contract=AMM, function="swap"),
        tx(D("2025-03-06"), F, status="dropped_replace_by_fee", fee=999),
        tx(
            D("2025-04-10"),
            G,
            fee=100,
            block_time=datetime(2025, 4, 10, 0, 0, 30, tzinfo=UTC),
            partition=LAST,
        ),
    ]
    return rows


CHAIN_TX = 37 + 1 + 6 + 1 + 3 + 3 + 1 + 1 + 1  # coinbase, tenure, A, B, C, D, E, F, G
CHAIN_FEES = 50 + 17000 + 500 + 12000 + 800 + 700 + 999 + 100


def make_db(path: Path, rows: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(path))
    conn.execute(CREATE_TABLE_SQL)
    if rows:
        placeholders = ", ".join("?" for _ in COLUMN_NAMES)
        conn.executemany(
            f"INSERT INTO {TABLE} ({', '.join(COLUMN_NAMES)}) VALUES ({placeholders})",
            [[r[c] for c in COLUMN_NAMES] for r in rows],
        )
    return conn


# Module-scoped: the tests only read (the one that changes the session TimeZone sets it back), and building the
# file and its aggregates per test was most of this module's time.
@pytest.fixture(scope="module", params=["raw", "aggregates"])
def conn(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The same rows read two ways: a raw table only (the page derives every table from it) and with the
    persisted aggregates built (the page reads them): every hand-computed figure must hold for both."""
    c = make_db(tmp_path_factory.mktemp(request.param) / "stx.duckdb", fixture_rows())
    if request.param == "aggregates":
        refresh_stale(c)
        assert aggregates_fresh(c)
    yield c
    c.close()


@pytest.fixture(scope="module")
def data(conn: duckdb.DuckDBPyConnection) -> DashboardData:
    return metrics.compute_all(conn)


def by_day(data: DashboardData) -> dict[date, Any]:
    return {d.day: d for d in data.daily}


def test_coverage_lists_the_gap(data: DashboardData) -> None:
    cov = data.coverage
    assert (cov.first_day, cov.last_day, cov.days_covered) == (FIRST, LAST, 37)
    assert cov.missing_days == GAP
    assert cov.missing_ranges == ("2025-04-02..2025-04-04",)
    assert cov.newest_tx_at == datetime(2025, 4, 10, 0, 0, 30, tzinfo=UTC)
    assert data.as_of == LAST


def test_chain_totals_count_system_and_unmined_rows(conn: duckdb.DuckDBPyConnection) -> None:
    totals = metrics.chain_totals(conn)
    assert (totals.transactions, totals.fees_ustx) == (CHAIN_TX, CHAIN_FEES)
    assert totals.transactions == conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]


def test_daily_active_and_new(data: DashboardData) -> None:
    days = by_day(data)
    assert len(data.daily) == 40  # every calendar day of the range, missing ones included
    active = {d: r.active for d, r in days.items() if r.active}
    assert active == {
        D("2025-03-01"): 2,
        D("2025-03-03"): 1,
        D("2025-03-05"): 1,
        D("2025-03-10"): 1,
        D("2025-03-11"): 1,
        D("2025-03-12"): 1,
        D("2025-03-26"): 1,
        D("2025-04-01"): 1,
        D("2025-04-08"): 1,
        D("2025-04-09"): 2,
    }
    new = {d: r.new for d, r in days.items() if r.new}
    assert new == {D("2025-03-01"): 2, D("2025-03-05"): 1, D("2025-03-11"): 1, D("2025-04-09"): 1}
    # The miner (coinbase every day) and F (dropped) are never wallets; quiet stored days are 0.
    assert days[D("2025-03-02")].active == 0
    assert days[D("2025-03-06")].active == 0
    for gap_day in GAP:
        assert not days[gap_day].covered
        assert days[gap_day].active is None and days[gap_day].new is None


def test_moving_average(data: DashboardData) -> None:
    days = by_day(data)
    assert days[D("2025-03-06")].active_ma7 is None  # fewer than 7 days of history
    assert days[D("2025-03-07")].active_ma7 == pytest.approx(4 / 7)
    assert days[D("2025-03-07")].new_ma7 == pytest.approx(3 / 7)
    # 03-30..04-05 has 3 missing days: the mean is over the 4 stored ones (0, 0, 1, 0).
    assert days[D("2025-04-05")].active_ma7 == pytest.approx(1 / 4)


def test_mau_and_dau_mau(data: DashboardData) -> None:
    days = by_day(data)
    assert days[D("2025-03-29")].mau is None  # fewer than 30 days of history
    assert days[D("2025-03-30")].mau == 4  # A B C D
    assert days[D("2025-03-30")].dau_mau == 0
    assert days[D("2025-03-31")].mau == 3  # B's only day (03-01) left the window
    assert days[D("2025-04-05")].mau == 3
    assert days[D("2025-04-02")].mau is None  # missing day
    assert days[D("2025-04-09")].mau == 4  # A C D E
    assert days[D("2025-04-09")].dau_mau == pytest.approx(0.5)


def test_weekly_and_monthly_active(data: DashboardData) -> None:
    weekly = [(w.start.isoformat(), w.active, w.complete) for w in data.weekly]
    assert weekly == [
        ("2025-02-24", 2, False),
        ("2025-03-03", 2, True),
        ("2025-03-10", 3, True),
        ("2025-03-17", 0, True),
        ("2025-03-24", 1, True),
        ("2025-03-31", 1, False),
        ("2025-04-07", 3, False),
    ]
    monthly = [(m.start.isoformat(), m.active, m.complete) for m in data.monthly]
    assert monthly == [("2025-03-01", 4, True), ("2025-04-01", 3, False)]


def test_cohort_retention_only_complete_weeks(data: DashboardData) -> None:
    cells = {(c.cohort.isoformat(), c.week): (c.cohort_size, c.active, c.share) for c in data.cohorts}
    assert cells == {
        # Week 02-24 is only partly stored: no k=0 cell; weeks 03-31 and 04-07 are incomplete.
        ("2025-02-24", 1): (2, 1, 0.5),
        ("2025-02-24", 2): (2, 1, 0.5),
        ("2025-02-24", 3): (2, 0, 0.0),
        ("2025-02-24", 4): (2, 0, 0.0),
        ("2025-03-03", 0): (1, 1, 1.0),
        ("2025-03-03", 1): (1, 1, 1.0),
        ("2025-03-03", 2): (1, 0, 0.0),
        ("2025-03-03", 3): (1, 1, 1.0),
        ("2025-03-10", 0): (1, 1, 1.0),
        ("2025-03-10", 1): (1, 0, 0.0),
        ("2025-03-10", 2): (1, 0, 0.0),
    }
    # E's cohort (week 04-07) has no complete week yet.
    assert not any(c.cohort == D("2025-04-07") for c in data.cohorts)


def test_summary_rows(data: DashboardData) -> None:
    rows = {r.days: r for r in data.summary}
    assert sorted(rows) == [7, 30, 90]

    r7 = rows[7]
    assert (r7.start, r7.end, r7.complete) == (D("2025-04-03"), LAST, True)
    assert (r7.active_wallets, r7.new_wallets, r7.transactions, r7.successful) == (3, 1, 4, 3)
    assert r7.fees_ustx == 6300
    assert r7.mean_fee_per_wallet_ustx == pytest.approx(2100)
    assert r7.median_fee_per_wallet_ustx == pytest.approx(700)
    assert (r7.retention_cohort_start, r7.retention_cohort_end) == (D("2025-03-04"), D("2025-03-10"))
    assert (r7.retention_cohort_size, r7.retention_30d) == (1, 1.0)  # C came back on 03-12

    r30 = rows[30]
    assert (r30.active_wallets, r30.new_wallets, r30.transactions, r30.successful) == (4, 2, 8, 7)
    assert r30.fees_ustx == 12500
    assert r30.mean_fee_per_wallet_ustx == pytest.approx(3125)
    assert r30.median_fee_per_wallet_ustx == pytest.approx(1400)
    assert r30.retention_cohort_size == 3  # A B C; B never came back
    assert r30.retention_30d == pytest.approx(2 / 3)
    assert r30.success_rate == pytest.approx(7 / 8)

    r90 = rows[90]
    assert r90.complete is False  # starts before the stored history
    assert (r90.active_wallets, r90.new_wallets, r90.transactions, r90.successful) == (5, 5, 14, 11)
    assert r90.fees_ustx == 31000
    assert r90.mean_fee_per_wallet_ustx == pytest.approx(6200)
    assert r90.median_fee_per_wallet_ustx == pytest.approx(800)
    assert r90.retention_30d == pytest.approx(2 / 3)


def test_summary_with_explicit_as_of(conn: duckdb.DuckDBPyConnection) -> None:
    (r7,) = metrics.summary(conn, D("2025-03-07"), windows=(7,))
    assert (r7.start, r7.active_wallets, r7.new_wallets, r7.transactions) == (FIRST, 3, 3, 5)
    assert r7.retention_cohort_size == 0 and r7.retention_30d is None


def test_top_senders(data: DashboardData) -> None:
    top = [(s.address, s.transactions, s.successful, s.fees_ustx, s.active_days) for s in data.top_senders]
    assert top == [
        (D_, 3, 2, 800, 2),
        (A, 2, 2, 9000, 2),
        (C, 2, 2, 2000, 2),
        (E_, 1, 1, 700, 1),
    ]
    assert data.top_senders[1].first_seen == FIRST


def test_top_contracts(data: DashboardData) -> None:
    top = [(c.contract_id, c.calls, c.successful, c.callers, c.fees_ustx, c.top_function) for c in data.top_contracts]
    assert top == [
        (AMM, 3, 3, 3, 2000, "swap"),
        # three functions called once each: ties go to the smallest name
        (HOSTILE_CONTRACT, 3, 2, 3, 5300, HOSTILE_FUNCTION),
    ]


def test_top_limits_and_window(conn: duckdb.DuckDBPyConnection) -> None:
    assert [s.address for s in metrics.top_senders(conn, days=7, limit=2)] == [D_, A]
    assert [c.contract_id for c in metrics.top_contracts(conn, days=1)] == [AMM]


def test_tx_by_type_status_and_fees(data: DashboardData) -> None:
    first_day_types = {r.category: r.transactions for r in data.tx_by_type if r.day == FIRST}
    assert first_day_types == {"coinbase": 1, "tenure_change": 1, "token_transfer": 1, "contract_call": 1}
    first_day_status = {r.category: r.transactions for r in data.tx_by_status if r.day == FIRST}
    assert first_day_status == {"success": 3, "abort_by_response": 1}
    assert {r.day for r in data.tx_by_type}.isdisjoint(GAP)
    fees = {f.day: (f.transactions, f.fees_ustx) for f in data.fees}
    assert fees[FIRST] == (4, 1550)
    assert fees[D("2025-03-06")] == (2, 999)  # the dropped row is stored, so the chain view shows it
    # G's transaction falls after the last stored day: in the chain totals only.
    assert sum(f.transactions for f in data.fees) == CHAIN_TX - 1
    assert sum(f.fees_ustx for f in data.fees) == CHAIN_FEES - 100


def test_session_timezone_does_not_move_days(conn: duckdb.DuckDBPyConnection, data: DashboardData) -> None:
    conn.execute("SET TimeZone = 'Pacific/Kiritimati'")
    try:
        assert metrics.daily_wallets(conn) == data.daily
    finally:
        conn.execute("RESET TimeZone")


def test_working_tables_are_dropped(conn: duckdb.DuckDBPyConnection) -> None:
    metrics.compute_all(conn)
    temp = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0]
    assert temp == 0


def test_single_day(tmp_path: Path) -> None:
    day = D("2025-05-05")
    conn = make_db(tmp_path / "one.duckdb", [tx(day, A, fee=10), tx(day, B, fee=30), tx(day, MINER, "coinbase")])
    data = metrics.compute_all(conn)
    assert (data.coverage.first_day, data.coverage.last_day, data.coverage.days_covered) == (day, day, 1)
    assert data.coverage.missing_days == ()
    (only,) = data.daily
    assert (only.active, only.new, only.active_ma7, only.mau) == (2, 2, None, None)
    assert [(r.days, r.complete, r.active_wallets, r.fees_ustx) for r in data.summary] == [
        (7, False, 2, 40),
        (30, False, 2, 40),
        (90, False, 2, 40),
    ]
    assert data.summary[0].median_fee_per_wallet_ustx == pytest.approx(20)
    assert data.cohorts == []  # no complete week
    assert [(w.active, w.complete) for w in data.weekly] == [(2, False)]


def test_empty_table(tmp_path: Path) -> None:
    conn = make_db(tmp_path / "empty.duckdb", [])
    data = metrics.compute_all(conn)
    assert data.coverage.is_empty and data.as_of is None
    assert (data.totals.transactions, data.totals.fees_ustx) == (0, 0)
    assert data.daily == data.summary == data.cohorts == data.top_senders == data.top_contracts == []
    assert data.weekly == data.monthly == data.tx_by_type == data.fees == []


def test_a_refetched_old_day_moves_a_first_seen_date_and_the_page_follows(tmp_path: Path) -> None:
    """03-01 re-fetched without A's and B's transactions, after the aggregates were built: A's first-seen date
    moves to 03-03 (from cohort week 02-24 to 03-03, whose cells in weeks the re-fetch did not touch change too)
    and B is gone. Hand-computed, and the same page as from the raw table alone."""
    from stx_pipeline.storage import replace_day

    conn = make_db(tmp_path / "stx.duckdb", fixture_rows())
    refresh_stale(conn)
    refetched = conn.execute(
        f"SELECT * FROM {TABLE} WHERE partition_date = ? AND sender_address NOT IN (?, ?)", [FIRST, A, B]
    ).to_arrow_table()
    assert refetched.num_rows == 2  # the miner's coinbase and tenure change
    replace_day(conn, FIRST, refetched)
    refresh_stale(conn)
    assert aggregates_fresh(conn)
    data = metrics.compute_all(conn)

    days = by_day(data)
    new = {d: r.new for d, r in days.items() if r.new}
    assert new == {D("2025-03-03"): 1, D("2025-03-05"): 1, D("2025-03-11"): 1, D("2025-04-09"): 1}
    assert days[FIRST].active == 0
    assert days[D("2025-03-30")].mau == 3  # A C D (B's only day is gone)
    assert [(w.start.isoformat(), w.active) for w in data.weekly][:3] == [
        ("2025-02-24", 0),
        ("2025-03-03", 2),
        ("2025-03-10", 3),
    ]
    assert [(m.start.isoformat(), m.active) for m in data.monthly] == [("2025-03-01", 3), ("2025-04-01", 3)]
    cells = {(c.cohort.isoformat(), c.week): (c.cohort_size, c.active) for c in data.cohorts}
    assert cells == {
        # A (03-03, 03-10) joined C (03-05, 03-12, 03-26) in cohort 03-03; cohort 02-24 is empty.
        ("2025-03-03", 0): (2, 2),
        ("2025-03-03", 1): (2, 2),
        ("2025-03-03", 2): (2, 0),
        ("2025-03-03", 3): (2, 1),
        ("2025-03-10", 0): (1, 1),
        ("2025-03-10", 1): (1, 0),
        ("2025-03-10", 2): (1, 0),
    }
    top = {t.address: (t.transactions, t.first_seen) for t in data.top_senders}
    assert top[A] == (2, D("2025-03-03")) and B not in top

    stored = conn.execute(f"SELECT {', '.join(COLUMN_NAMES)} FROM {TABLE}").fetchall()
    raw = make_db(tmp_path / "raw.duckdb", [dict(zip(COLUMN_NAMES, r, strict=True)) for r in stored])
    assert metrics.compute_all(raw) == data
