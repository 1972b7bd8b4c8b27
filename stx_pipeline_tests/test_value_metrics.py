"""The value page's metrics against a small hand-made history written through the real `replace_day` into a DuckDB
file, with every expectation computed by hand below.

Stored days 2025-01-06 (Mon) .. 2025-04-15 (Tue) = as_of; only the days listed hold rows. All at noon UTC.
  01-06  coinbase; tenure_change fee 50; A token_transfer fee 400,000 -> B 10 STX; S contract_call fee 1,000
  01-07  A contract_call 300,000
  01-08  B contract_call fee 2,000 SPONSORED by S (S pays it)
  01-09  B contract_call abort_by_response fee 3,000 (failed: B pays it)
  01-20  A token_transfer 400,000 -> C 5 STX (C's only receipt before its activation)
  02-03 / 02-04 / 02-05  C contract_call, contract_call, smart_contract, 300,000 each
  02-20  A token_transfer 1,000,000 -> C 20 STX (after C's activation: not "funded")
  04-01  A contract_call 2,000,000; D token_transfer 10,000 -> R 1 STX (R never sends: not a wallet)
  04-14  E token_transfer abort_by_post_condition 1,000 -> D 50 STX (failed: nothing moves);
         E token_transfer 1,000 -> D 2 STX SPONSORED by S (S's day 98: outside its 90-day window)
  04-15  coinbase; E contract_call 1,000; F dropped_replace_by_fee 999 (never mined: ignored)

Wallets (first, last, tx in days 0-29, fees paid in days 0-29 / 0-59 / 0-89, received by activation):
  A 01-06 04-01 3 1,100,000 2,100,000 4,100,000 0      (active, value)
  S 01-06 01-06 1     3,000     3,000     3,000 0      (sponsor: its own 1,000 + B's 2,000)
  B 01-08 01-09 2     3,000     3,000     3,000 10 STX (funded)
  C 02-03 02-05 3   900,000   900,000   900,000 5 STX  (active)
  D 04-01 04-01 1    10,000    10,000    10,000 0
  E 04-14 04-15 3     2,000     2,000     2,000 0
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from stx_pipeline.dashboard.value import (
    _BIN,
    _KEPT,
    DEFINITIONS,
    FEE_BIN_EDGES,
    RETENTION_DAYS,
    FeeBin,
    HorizonSummary,
    ValueData,
    compute_value,
)
from stx_pipeline.schema import TABLE, USER_TX_TYPES, arrow_schema
from stx_pipeline.storage import replace_day
from stx_pipeline.storage.aggregates import refresh_stale
from stx_pipeline.storage.ingest_record import RECORD_TABLE
from stx_pipeline.storage.value_aggregates import (
    VALUE_DAY,
    VALUE_DAY_SELECT,
    VALUE_WALLET_DAY,
    VALUE_WALLET_DAY_SELECT,
    WALLET_VALUE,
    WALLET_VALUE_SELECT,
)

D = dt.date.fromisoformat
A, S, B, C, D_, E, F, R, Z = (f"SP{c}WALLET" for c in "ASBCDEFRZ")
MINER = "SPMINER"
FIRST, AS_OF = D("2025-01-06"), D("2025-04-15")
STX = 1_000_000
_ids = itertools.count()


def tx(
    day: dt.date,
    sender: str,
    tx_type: str = "contract_call",
    fee: int = 0,
    status: str = "success",
    *,
    sponsor: str | None = None,
    to: str | None = None,
    amount: int | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One row of stx_transactions, mined at noon UTC of `day` (or `at`), its burn block 5 minutes earlier."""
    n = next(_ids)
    bt = at or dt.datetime.combine(day, dt.time(12), dt.UTC)
    return {
        "tx_id": f"0x{n:064x}",
        "partition_date": (bt - dt.timedelta(minutes=5)).date(),
        "block_height": 1000 + n,
        "block_hash": f"0xb{n}",
        "block_time": bt,
        "burn_block_time": bt - dt.timedelta(minutes=5),
        "burn_block_height": 800000 + n,
        "tx_index": 0,
        "microblock_sequence": None,
        "tx_type": tx_type,
        "tx_status": status,
        "sender_address": sender,
        "sponsored": sponsor is not None,
        "sponsor_address": sponsor,
        "fee_ustx": fee,
        "nonce": n,
        "token_transfer_recipient": to,
        "token_transfer_amount_ustx": amount,
        "contract_id": None,
        "function_name": None,
        "ingested_at": dt.datetime(2025, 4, 16, tzinfo=dt.UTC),
    }


def history() -> dict[dt.date, list[dict[str, Any]]]:
    rows = [
        tx(D("2025-01-06"), MINER, "coinbase"),
        tx(D("2025-01-06"), MINER, "tenure_change", 50),
        tx(D("2025-01-06"), A, "token_transfer", 400_000, to=B, amount=10 * STX),
        tx(D("2025-01-06"), S, fee=1_000),
        tx(D("2025-01-07"), A, fee=300_000),
        tx(D("2025-01-08"), B, fee=2_000, sponsor=S),
        tx(D("2025-01-09"), B, fee=3_000, status="abort_by_response"),
        tx(D("2025-01-20"), A, "token_transfer", 400_000, to=C, amount=5 * STX),
        tx(D("2025-02-03"), C, fee=300_000),
        tx(D("2025-02-04"), C, fee=300_000),
        tx(D("2025-02-05"), C, "smart_contract", 300_000),
        tx(D("2025-02-20"), A, "token_transfer", 1_000_000, to=C, amount=20 * STX),
        tx(D("2025-04-01"), A, fee=2_000_000),
        tx(D("2025-04-01"), D_, "token_transfer", 10_000, to=R, amount=1 * STX),
        tx(D("2025-04-14"), E, "token_transfer", 1_000, "abort_by_post_condition", to=D_, amount=50 * STX),
        tx(D("2025-04-14"), E, "token_transfer", 1_000, sponsor=S, to=D_, amount=2 * STX),
        tx(D("2025-04-15"), MINER, "coinbase"),
        tx(D("2025-04-15"), E, fee=1_000),
        tx(D("2025-04-15"), F, "token_transfer", 999, "dropped_replace_by_fee", to=A, amount=5 * STX),
    ]
    days: dict[dt.date, list[dict[str, Any]]] = {}
    for r in rows:
        days.setdefault(r["partition_date"], []).append(r)
    return days


def write(conn: duckdb.DuckDBPyConnection, day: dt.date, rows: list[dict[str, Any]]) -> None:
    replace_day(conn, day, pa.Table.from_pylist(rows, schema=arrow_schema()))


def build(path: Path, days: dict[dt.date, list[dict[str, Any]]]) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(path))
    for day, rows in sorted(days.items()):
        write(conn, day, rows)
    refresh_stale(conn)
    return conn


@pytest.fixture
def conn(tmp_path: Path):
    c = build(tmp_path / "v.duckdb", history())
    yield c
    c.close()


@pytest.fixture
def value(conn: duckdb.DuckDBPyConnection) -> ValueData:
    return compute_value(conn, period="week")


def wallet_rows(conn: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Per wallet: (first, last, tx_30, fee_30, fee_60, fee_90, received_by_activation)."""
    sql = f"SELECT * EXCLUDE (last_partition) FROM {WALLET_VALUE} WHERE first_day IS NOT NULL"
    return {r[0]: r[1:] for r in conn.execute(sql).fetchall()}


def scratch(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """The value aggregates computed from nothing over the whole raw table."""
    ut = {"user_types": list(USER_TX_TYPES)}
    wallet_day = conn.execute(f"SELECT * FROM ({VALUE_WALLET_DAY_SELECT.format(where='')}) ORDER BY ALL", ut)
    wallet_day_rows = wallet_day.fetchall()
    value_day = conn.execute(f"SELECT * FROM ({VALUE_DAY_SELECT.format(where='')}) ORDER BY ALL", ut).fetchall()
    conn.execute(f"CREATE OR REPLACE TEMP TABLE scratch_wd AS {VALUE_WALLET_DAY_SELECT.format(where='')}", ut)
    wallets = conn.execute(
        "SELECT * FROM (" + WALLET_VALUE_SELECT.format(source="scratch_wd", days="") + ") ORDER BY ALL"
    ).fetchall()
    return {"wallet_day": wallet_day_rows, "value_day": value_day, "wallets": wallets}


def kept(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {
        "wallet_day": conn.execute(f"SELECT * FROM {VALUE_WALLET_DAY} ORDER BY ALL").fetchall(),
        "value_day": conn.execute(f"SELECT * FROM {VALUE_DAY} ORDER BY ALL").fetchall(),
        "wallets": conn.execute(f"SELECT * FROM {WALLET_VALUE} ORDER BY ALL").fetchall(),
    }


def test_per_wallet_windows_charge_the_payer_and_count_receipts_up_to_activation(conn):
    # (first, last, tx_30, fee_30, fee_60, fee_90, received_by_activation)
    assert wallet_rows(conn) == {
        A: (D("2025-01-06"), D("2025-04-01"), 3, 1_100_000, 2_100_000, 4_100_000, 0),
        S: (D("2025-01-06"), D("2025-01-06"), 1, 3_000, 3_000, 3_000, 0),  # + B's sponsored 2,000
        B: (D("2025-01-08"), D("2025-01-09"), 2, 3_000, 3_000, 3_000, 10 * STX),  # failed fee paid, sponsored not
        C: (D("2025-02-03"), D("2025-02-05"), 3, 900_000, 900_000, 900_000, 5 * STX),  # 20 STX came after
        D_: (D("2025-04-01"), D("2025-04-01"), 1, 10_000, 10_000, 10_000, 0),  # a failed transfer moves nothing
        E: (D("2025-04-14"), D("2025-04-15"), 3, 2_000, 2_000, 2_000, 0),
    }
    # The activation day is the first-seen day the growth page uses.
    same = (
        f"SELECT count(*) FROM {WALLET_VALUE} w JOIN wallet_first_seen f USING (address) "
        "WHERE w.first_day = f.first_day"
    )
    assert conn.execute(same).fetchone()[0] == len(wallet_rows(conn))
    assert kept(conn) == scratch(conn)


def build_stepwise(path: Path, days: dict[dt.date, list[dict[str, Any]]], order: list[dt.date]):
    """Each day written then refreshed alone, in `order` (a daily top-up; a backfill of older days)."""
    conn = duckdb.connect(str(path))
    for day in order:
        write(conn, day, days[day])
        refresh_stale(conn)
    return conn


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_the_same_rows_whatever_the_order_and_the_steps_of_the_writes(conn, tmp_path: Path):
    want = kept(conn)
    assert conn.execute(
        f"SELECT first_day, received_by_activation FROM {WALLET_VALUE} WHERE address = ?", [R]
    ).fetchone() == (
        None,
        1 * STX,
    )
    days = history()
    for name, order in (("forward", sorted(days)), ("backward", sorted(days, reverse=True))):
        other = build_stepwise(tmp_path / f"{name}.duckdb", days, order)
        assert kept(other) == want, name
        other.close()


def test_a_fee_paid_as_sponsor_on_the_activation_day_but_stored_in_the_day_before_counts(tmp_path: Path):
    p0, p1 = D("2025-05-01"), D("2025-05-02")
    spill = dt.datetime.combine(p1, dt.time(0, 0, 30), dt.UTC)  # burn block 23:55:30 on 05-01: partition 05-01
    days = {
        p0: [tx(p0, A, fee=700, sponsor=S, at=spill)],  # S pays 700 on block-time day 05-02, before it sends
        p1: [tx(p1, S, fee=100)],  # S activates on 05-02
    }
    conn = build_stepwise(tmp_path / "spill.duckdb", days, [p0, p1])
    assert wallet_rows(conn)[S] == (p1, p1, 1, 800, 800, 800, 0)
    assert kept(conn) == scratch(conn)


def test_cohort_fee_value_funnel_and_retention(value: ValueData):
    assert (value.as_of, value.first_day, value.period, value.wallets) == (AS_OF, FIRST, "week", 6)
    by = {c.cohort: c for c in value.cohorts}
    assert list(by) == [D("2025-01-06"), D("2025-02-03"), D("2025-03-31"), D("2025-04-14")]  # weeks with wallets

    w1 = by[D("2025-01-06")]  # A, S, B: ends 01-12; 01-12 + 89 = 04-11 <= as_of, so every horizon is ripe
    assert (w1.cohort_end, w1.includes_first_day, w1.new, w1.funded, w1.active, w1.value) == (
        D("2025-01-12"),
        True,
        3,
        1,
        1,
        1,
    )
    f30, f60, f90 = w1.fees
    assert f30.mean_ustx == pytest.approx(1_106_000 / 3) and f30.median_ustx == 3_000
    # quantile_cont over [3,000, 3,000, 1,100,000]: p75 at 1.5 -> 3,000 + 0.5 * 1,097,000; p90 at 1.8.
    assert f30.quantiles_ustx == pytest.approx((3_000, 3_000, 551_500, 880_600))
    assert (f60.mean_ustx, f60.median_ustx) == (pytest.approx(702_000), 3_000)
    assert (f90.mean_ustx, f90.median_ustx) == (pytest.approx(4_106_000 / 3), 3_000)
    # Day 1: A and B came back, S not; day 7 and 30: A only; day 90 (04-06 for A): nobody; day 180: too young.
    assert w1.retention[:4] == pytest.approx((2 / 3, 1 / 3, 1 / 3, 0.0)) and w1.retention[4] is None

    w2 = by[D("2025-02-03")]  # C: ends 02-09; 60 days ripe on 04-09, 90 days only on 05-09
    assert (w2.includes_first_day, w2.new, w2.funded, w2.active, w2.value) == (False, 1, 0, 1, 0)
    assert [(f.horizon, f.mean_ustx, f.median_ustx) for f in w2.fees] == [
        (30, 900_000, 900_000),
        (60, 900_000, 900_000),
        (90, None, None),
    ]
    assert w2.fees[2].quantiles_ustx is None
    assert w2.retention == (1.0, 0.0, 0.0, None, None)

    w3 = by[D("2025-03-31")]  # D: ends 04-06, too young for 30 days (05-05) but day 1 and 7 are stored
    assert (w3.new, w3.funded, w3.active, w3.value) == (1, 0, None, None)
    assert all(f.mean_ustx is None and f.median_ustx is None for f in w3.fees)
    assert w3.retention == (0.0, 0.0, None, None, None)

    w4 = by[D("2025-04-14")]  # E: ends 04-20, after as_of: even day 1 is not stored for its last day
    assert (w4.new, w4.active, w4.value) == (1, None, None)
    assert w4.retention == (None,) * 5


def test_fee_value_summary_and_histogram(value: ValueData):
    assert value.summary == (
        # first_day <= 03-17: A, S, B, C
        HorizonSummary(30, 4, pytest.approx(2_006_000 / 4), pytest.approx((3_000 + 900_000) / 2)),
        # first_day <= 02-15: the same four
        HorizonSummary(60, 4, pytest.approx(3_006_000 / 4), pytest.approx((3_000 + 900_000) / 2)),
        # first_day <= 01-16: A, S, B
        HorizonSummary(90, 3, pytest.approx(4_106_000 / 3), 3_000),
    )
    assert value.fee_histogram == (
        FeeBin(0, 0, 0),
        FeeBin(1, 1_000, 0),
        FeeBin(1_000, 10_000, 2),  # S, B
        FeeBin(10_000, 100_000, 0),
        FeeBin(100_000, 1_000_000, 1),  # C
        FeeBin(1_000_000, 10_000_000, 1),  # A
        FeeBin(10_000_000, None, 0),
    )


def test_retention_curves_blended_and_by_segment(value: ValueData):
    curves = {c.segment: c for c in value.retention}
    # A wallet counts at day N once first_day + N <= as_of: E (04-14) counts at day 1 and came back on 04-15.
    assert curves["all"].wallets == (6, 5, 4, 3, 0)
    assert curves["all"].share == pytest.approx((4 / 6, 1 / 5, 1 / 4, 0.0, None))
    assert (curves["funded"].wallets, curves["funded"].share) == ((1, 1, 1, 1, 0), (1.0, 0.0, 0.0, 0.0, None))
    # Segments decided on day 29 count wallets with first_day <= 03-17 (D and E are not yet classified).
    assert (curves["active"].wallets, curves["active"].share) == ((2, 2, 2, 1, 0), (1.0, 0.5, 0.5, 0.0, None))
    assert (curves["value"].wallets, curves["value"].share) == ((1, 1, 1, 1, 0), (1.0, 1.0, 1.0, 0.0, None))
    assert curves["non-value"].wallets == (3, 3, 3, 2, 0)
    assert curves["non-value"].share == pytest.approx((2 / 3, 0.0, 0.0, 0.0, None))


def test_per_day_rates_network_fees_and_new_vs_returning(value: ValueData):
    days = {d.day: d for d in value.days}
    assert sorted(days) == [
        D(s)
        for s in [
            "2025-01-06",
            "2025-01-07",
            "2025-01-08",
            "2025-01-09",
            "2025-01-20",
            "2025-02-03",
            "2025-02-04",
            "2025-02-05",
            "2025-02-20",
            "2025-04-01",
            "2025-04-14",
            "2025-04-15",
        ]
    ]

    def row(s: str) -> tuple:
        d = days[D(s)]
        return (d.network_fee_ustx, d.user_tx, d.sponsored_share, d.failed_rate, d.new_wallets)

    # (network fee, user tx, sponsored share, failed rate, new wallets)
    assert row("2025-01-06") == (401_050, 2, 0.0, 0.0, 2)  # the tenure change's fee is the network's
    assert row("2025-01-08") == (2_000, 1, 1.0, 0.0, 1)
    assert row("2025-01-09") == (3_000, 1, 0.0, 1.0, 0)
    assert row("2025-04-14") == (2_000, 2, 0.5, 0.5, 1)
    assert row("2025-04-15") == (1_000, 1, 0.0, 0.0, 0)  # the dropped transaction is not there
    assert {d.day: d.returning_wallets for d in value.days if d.returning_wallets} == {
        D("2025-01-07"): 1,
        D("2025-01-09"): 1,
        D("2025-01-20"): 1,
        D("2025-02-04"): 1,
        D("2025-02-05"): 1,
        D("2025-02-20"): 1,
        D("2025-04-01"): 1,  # A; D is new
        D("2025-04-15"): 1,
    }
    assert {d.day: d.stx_transferred_ustx for d in value.days if d.stx_transferred_ustx} == {
        D("2025-01-06"): 10 * STX,
        D("2025-01-20"): 5 * STX,
        D("2025-02-20"): 20 * STX,
        D("2025-04-01"): 1 * STX,
        D("2025-04-14"): 2 * STX,  # the failed 50 STX moved nothing
    }
    # Trailing 30 days exist from 02-04 (01-06 + 29); 02-04 sums 01-06 .. 02-04.
    assert days[D("2025-02-03")].trailing_30_fee_ustx is None
    assert days[D("2025-02-04")].trailing_30_fee_ustx == 401_050 + 300_000 + 2_000 + 3_000 + 400_000 + 600_000
    assert days[D("2025-04-14")].trailing_30_fee_ustx == 2_010_000 + 2_000
    assert value.network_fee_30d_ustx == days[AS_OF].trailing_30_fee_ustx == 2_010_000 + 2_000 + 1_000


def refetched_jan_6() -> list[dict[str, Any]]:
    """01-06 listed again with different content: A's and S's transactions gone, a new wallet Z sends B 4 STX."""
    return [
        tx(D("2025-01-06"), MINER, "coinbase"),
        tx(D("2025-01-06"), MINER, "tenure_change", 50),
        tx(D("2025-01-06"), Z, "token_transfer", 7_000, to=B, amount=4 * STX),
    ]


def test_an_old_day_refetched_moves_activation_segments_and_equals_a_build_from_scratch(conn, tmp_path: Path):
    write(conn, FIRST, refetched_jan_6())
    refresh_stale(conn)
    rows = wallet_rows(conn)
    # A now activates on 01-07: 01-20 is day 13, 02-20 day 44, 04-01 day 84. S no longer sends: not a wallet,
    # though it still paid B's and E's fees. B received only 4 STX by its activation: no longer funded.
    assert rows[A] == (D("2025-01-07"), D("2025-04-01"), 2, 700_000, 1_700_000, 3_700_000, 0)
    assert S not in rows
    assert rows[B] == (D("2025-01-08"), D("2025-01-09"), 2, 3_000, 3_000, 3_000, 4 * STX)
    assert rows[Z] == (D("2025-01-06"), D("2025-01-06"), 1, 7_000, 7_000, 7_000, 0)
    assert kept(conn) == scratch(conn)
    w1 = compute_value(conn, period="week").cohorts[0]
    assert (w1.new, w1.funded, w1.active, w1.value) == (3, 0, 0, 0)  # Z, A, B

    fresh_days = history()
    fresh_days[FIRST] = refetched_jan_6()
    fresh = build(tmp_path / "fresh.duckdb", fresh_days)
    assert kept(fresh) == kept(conn)
    assert compute_value(fresh) == compute_value(conn)


def test_an_earlier_as_of_equals_the_history_cut_there(conn, tmp_path: Path):
    cut = D("2025-02-20")
    early = build(tmp_path / "early.duckdb", {d: r for d, r in history().items() if d <= cut})
    assert compute_value(conn, as_of=cut) == compute_value(early)
    assert compute_value(conn, as_of=cut).as_of == cut
    assert compute_value(conn, as_of=D("2030-01-01")) == compute_value(conn)  # as_of never passes the last day


def test_aggregates_built_before_the_value_tables_get_them_on_the_next_refresh(tmp_path: Path):
    conn = build(tmp_path / "old.duckdb", history())
    want, page = kept(conn), compute_value(conn)
    for table in (VALUE_WALLET_DAY, VALUE_DAY, WALLET_VALUE):
        conn.execute(f"DROP TABLE {table}")
    assert compute_value(conn) == page  # from the raw table until a refresh builds them
    write(conn, AS_OF, history()[AS_OF])  # a top-up of one day
    refresh_stale(conn)
    assert kept(conn) == want


def test_a_read_only_look_at_stale_aggregates_computes_from_the_raw_rows(tmp_path: Path):
    path = tmp_path / "stale.duckdb"
    conn = build(path, history())
    before = compute_value(conn)
    write(conn, FIRST, refetched_jan_6())  # written, not refreshed: the aggregates are stale
    conn.close()
    with duckdb.connect(str(path), read_only=True) as ro:
        stale_look = compute_value(ro)
    with duckdb.connect(str(path)) as rw:
        refresh_stale(rw)
        assert stale_look == compute_value(rw) != before


def test_cohorts_are_monthly_for_a_long_history(conn):
    months = compute_value(conn, period="month")
    assert [(c.cohort, c.cohort_end, c.new) for c in months.cohorts] == [
        (D("2025-01-01"), D("2025-01-31"), 3),
        (D("2025-02-01"), D("2025-02-28"), 1),
        (D("2025-04-01"), D("2025-04-30"), 2),
    ]
    # January ends 01-31: 30 days ripe (03-01), 60 (04-01), not 90 (05-01).
    assert [f.mean_ustx is not None for f in months.cohorts[0].fees] == [True, True, False]
    assert compute_value(conn).period == "week"  # 99 days of history: weekly by default


def test_fee_bins_and_kept_days_follow_their_definitions_at_every_edge():
    """The fee_30 histogram's bin (0 for no fee, else 1 + the edges <= fee_30) and a wallet's `kept` (how many
    RETENTION_DAYS n have last_day >= first_day + n) are CASEs in SQL: checked on each edge and either side of it."""
    conn = duckdb.connect()
    fees = sorted({0, 1, *(e + d for e in FEE_BIN_EDGES for d in (-1, 0, 1))})
    got = dict(conn.execute(f"SELECT fee_30, {_BIN} FROM (SELECT unnest(?) AS fee_30)", [fees]).fetchall())
    assert got == {f: 0 if f == 0 else 1 + sum(e <= f for e in FEE_BIN_EDGES) for f in fees}
    gaps = sorted({0, *(n + d for n in RETENTION_DAYS for d in (-1, 0, 1))})
    rows = conn.execute(
        f"SELECT last_day - first_day, {_KEPT} FROM "
        "(SELECT DATE '2025-01-01' AS first_day, DATE '2025-01-01' + unnest(?) AS last_day)",
        [gaps],
    ).fetchall()
    assert dict(rows) == {g: sum(g >= n for n in RETENTION_DAYS) for g in gaps}
    conn.close()


def test_every_definition_is_in_the_docs_word_for_word():
    text = re.sub(r"\s+", " ", (Path(__file__).parents[1] / "docs" / "METRICS.md").read_text())
    missing = [k for k, sentence in DEFINITIONS.items() if sentence not in text]
    assert not missing
    assert dataclasses.is_dataclass(ValueData)


def test_the_value_page_reads_no_raw_row(conn):
    conn.execute(f"DELETE FROM {TABLE}")  # the aggregates alone serve the page
    assert compute_value(conn, period="week").wallets == 6


def random_day(rng: random.Random, day: dt.date) -> list[dict[str, Any]]:
    """A few transactions among 8 addresses: sponsored, failed, transfers, some mined after midnight (their block-time
    day is the next one, stored in this partition)."""
    who = [f"SPR{i}" for i in range(8)]
    rows = []
    for _ in range(rng.randint(0, 5)):
        at = dt.datetime.combine(day, dt.time(rng.choice([1, 12, 23]), 58), dt.UTC)
        if at.hour == 23 and rng.random() < 0.5:
            at += dt.timedelta(minutes=4)  # burn block 23:57 this day, block 00:02 the next
        kind = rng.choice(["token_transfer", "contract_call"])
        rows.append(
            tx(
                day,
                rng.choice(who),
                kind,
                rng.choice([0, 500, 300_000, 1_200_000]),
                rng.choice(["success", "success", "abort_by_response"]),
                sponsor=rng.choice([None, None, rng.choice(who)]),
                to=rng.choice(who) if kind == "token_transfer" else None,
                amount=rng.choice([1, 6 * STX, 11 * STX]) if kind == "token_transfer" else None,
                at=at,
            )
        )
    return [r for r in rows if r["partition_date"] == day]


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
@pytest.mark.parametrize("seed", range(3))
def test_any_sequence_of_day_replaces_equals_a_computation_from_scratch(tmp_path: Path, seed: int):
    rng = random.Random(seed)
    base = D("2025-01-01")
    conn = duckdb.connect(str(tmp_path / f"r{seed}.duckdb"))
    for step in range(25):
        day = base + dt.timedelta(days=rng.randint(0, 45))  # new days, re-fetched days, older days
        write(conn, day, random_day(rng, day))
        if rng.random() < 0.6 or step == 24:  # sometimes several days per refresh
            refresh_stale(conn)
            assert kept(conn) == scratch(conn), (seed, step, day)
    assert compute_value(conn) == compute_value(build(tmp_path / "again.duckdb", stored_days(conn)))


def stored_days(conn: duckdb.DuckDBPyConnection) -> dict[dt.date, list[dict[str, Any]]]:
    """Every recorded day's stored rows (a day written empty included)."""
    days: dict[dt.date, list[dict[str, Any]]] = {
        r[0]: [] for r in conn.execute(f"SELECT day FROM {RECORD_TABLE}").fetchall()
    }
    for r in conn.execute(f"SELECT * FROM {TABLE} ORDER BY tx_id").to_arrow_table().to_pylist():
        days.setdefault(r["partition_date"], []).append(r)
    return days


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
@pytest.mark.parametrize("seed", range(3))
def test_old_days_refetched_in_a_long_sparse_history_equal_a_computation_from_scratch(tmp_path: Path, seed: int):
    """A year of sparse days, then old days re-fetched: activations move by months, so a re-fetch reads only up to
    the new activation's windows (WALLET_VALUE_MOVE's bound) while the addresses stay active long after it; and
    last sending days and partitions lost from a re-fetched day are found again before it."""
    rng = random.Random(100 + seed)
    base = D("2025-01-01")
    conn = duckdb.connect(str(tmp_path / f"s{seed}.duckdb"))
    days = sorted({base + dt.timedelta(days=rng.randint(0, 365)) for _ in range(40)})
    for day in days:
        write(conn, day, random_day(rng, day))
    refresh_stale(conn)
    assert kept(conn) == scratch(conn)
    for step in range(12):
        day = rng.choice(days[: len(days) // 2])  # an old day, re-fetched with other content (often none)
        write(conn, day, random_day(rng, day) if rng.random() < 0.5 else [])
        refresh_stale(conn)
        assert kept(conn) == scratch(conn), (seed, step, day)
