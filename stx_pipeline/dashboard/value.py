"""The value page's metrics: what a new wallet is worth in fees and how long it stays.

Every figure is DuckDB SQL over the value aggregates (`storage/value_aggregates.py`: `wallet_value`,
`agg_value_wallet_day`, `agg_value_day`), with bind parameters; the raw table is read only when those are stale
or missing and cannot be refreshed (a read-only connection), by the same SELECTs the refresh runs. Each metric
is defined in one sentence in `DEFINITIONS` (the page shows them; docs/METRICS.md repeats them word for word,
which a test checks). Amounts are in µSTX (`models.USTX_PER_STX` per STX). Day 0 is a wallet's activation day,
so "the first 30 days" are days 0-29. A horizon a cohort or wallet has not fully lived through by `as_of` gives
None, never 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import duckdb

from stx_pipeline.dashboard.models import USTX_PER_STX
from stx_pipeline.schema import TABLE, USER_TX_TYPES
from stx_pipeline.storage.activity_metrics import DAILY
from stx_pipeline.storage.aggregates import aggregates_fresh
from stx_pipeline.storage.ingest_record import RECORD_TABLE, has_table
from stx_pipeline.storage.value_aggregates import (
    FEE_HORIZONS,
    TX_WINDOW,
    VALUE_DAY,
    VALUE_DAY_SELECT,
    VALUE_WALLET_DAY,
    VALUE_WALLET_DAY_SELECT,
    WALLET_VALUE,
    WALLET_VALUE_SELECT,
    value_aggregates_exist,
)

Conn = duckdb.DuckDBPyConnection
Period = Literal["week", "month"]

RETENTION_DAYS: tuple[int, ...] = (1, 7, 30, 90, 180)
ACTIVE_MIN_TX = 3  # the old system's ClassificationThresholds.active_min_tx_30d
VALUE_MIN_FEE_USTX = 1 * USTX_PER_STX  # value_min_fee_stx_30d
FUNDED_MIN_USTX = 10 * USTX_PER_STX  # funded_stx_min (a balance there; received by transfer here)
QUANTILES: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
# Bin edges of the fee_30 histogram, µSTX: 0 | (0, 0.001) | [0.001, 0.01) | ... | [10, ∞) STX.
FEE_BIN_EDGES: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
WEEKLY_UNTIL_DAYS = 182  # a history up to half a year gets weekly cohorts, a longer one monthly

DEFINITIONS: dict[str, str] = {
    "wallet": "A wallet is an address that sent at least one mined user transaction (token transfer, contract call "
    "or contract deploy; failed ones count, since their fees are paid).",
    "activation": "A wallet's activation day is the UTC day of its first such transaction in the stored history; "
    "day 0 is that day, so its first 30 days are days 0 to 29.",
    "cohort": "A cohort is the wallets activated in the same ISO week (Monday) or calendar month; a cohort that "
    "holds the first stored day also counts older wallets first seen then.",
    "fees_paid": "Fees paid are charged to whoever paid them: the sponsor of a sponsored transaction, otherwise "
    "its sender.",
    "fee_value": "Fee value at N days is the fees a wallet paid in its first N days (30, 60, 90); a cohort's mean "
    "and median are shown only once the first N days of its last day are stored.",
    "fee_distribution": "The fee distribution is the 25th, 50th, 75th and 90th percentiles of a cohort's fee "
    "value, and a histogram of 30-day fee value over every wallet whose first 30 days are stored.",
    "network_fees": "Network fee value is the fees of every mined transaction of a day (system transactions "
    "included); the trailing 30-day value sums the 30 days ending that day, shown once 30 days are stored.",
    "funded": "Funded: received at least 10 STX by successful token transfers on or before the activation day. "
    "The old pages used the wallet's current balance, which the transaction history cannot give.",
    "active": "Active: sent at least 3 transactions in its first 30 days.",
    "value": "Value: paid at least 1 STX of fees in its first 30 days.",
    "funnel": "The funnel counts a cohort's new wallets and, each on its own, how many are funded, active and "
    "value; active and value are shown once the cohort's first 30 days are stored.",
    "retention": "Retention at day N is the share of wallets with a transaction on day N after activation or "
    "later; a wallet counts once day N is stored for it, a cohort once day N is stored for its last wallet.",
    "retention_segments": "Segment curves count only wallets whose first 30 days are stored, since active and "
    "value are decided on day 29.",
    "sponsored_share": "Sponsored share is the sponsored transactions among a day's mined user transactions.",
    "failed_rate": "Failed-transaction rate is the mined user transactions of a day whose status is not success, "
    "over all of that day's mined user transactions.",
    "new_returning": "A day's new wallets are those activated that day; returning wallets are the other wallets "
    "that sent a mined user transaction that day.",
    "stx_transferred": "STX transferred is the amount moved by a day's successful token transfers.",
}

# Segment -> (SQL predicate on wallet_value, decided on day 29).
SEGMENTS: dict[str, tuple[str, bool]] = {
    "all": ("TRUE", False),
    "funded": ("received_by_activation >= $funded_min", False),
    "active": ("tx_30 >= $active_min", True),
    "value": ("fee_30 >= $value_min", True),
    "non-value": ("fee_30 < $value_min", True),
}


@dataclass(frozen=True, slots=True)
class FeeValue:
    """A cohort's fee value at one horizon (µSTX); every figure None while the cohort is too young for it."""

    horizon: int
    mean_ustx: float | None
    median_ustx: float | None
    quantiles_ustx: tuple[float, ...] | None  # at QUANTILES


@dataclass(frozen=True, slots=True)
class CohortValue:
    """One activation cohort: fee value per horizon, the funnel and the retention row."""

    cohort: date  # first day of the week or month
    cohort_end: date  # its last day
    includes_first_day: bool  # holds the first stored day: older wallets first seen then count as new
    new: int
    funded: int
    active: int | None  # None until the cohort's first 30 days are stored
    value: int | None
    fees: tuple[FeeValue, ...]  # one per FEE_HORIZONS
    retention: tuple[float | None, ...]  # one per RETENTION_DAYS


@dataclass(frozen=True, slots=True)
class HorizonSummary:
    """Fee value at one horizon over every wallet that has lived through it (µSTX)."""

    horizon: int
    wallets: int
    mean_ustx: float | None
    median_ustx: float | None


@dataclass(frozen=True, slots=True)
class RetentionCurve:
    """Retention of one segment at each of RETENTION_DAYS: wallets counted and the share still active."""

    segment: str
    wallets: tuple[int, ...]
    share: tuple[float | None, ...]  # None when no wallet is old enough


@dataclass(frozen=True, slots=True)
class FeeBin:
    """Wallets whose 30-day fee value lies in [lo_ustx, hi_ustx) (hi None: no upper bound; lo = hi = 0: none)."""

    lo_ustx: int
    hi_ustx: int | None
    wallets: int


@dataclass(frozen=True, slots=True)
class ValueDay:
    """One UTC day of the per-day series."""

    day: date
    network_fee_ustx: int
    trailing_30_fee_ustx: int | None  # None while fewer than 30 days are stored up to this day
    user_tx: int
    sponsored_share: float | None  # None on a day without user transactions
    failed_rate: float | None
    new_wallets: int
    returning_wallets: int
    stx_transferred_ustx: int


@dataclass(frozen=True, slots=True)
class ValueData:
    """Everything the value page shows, as of `as_of` (the last stored day unless told)."""

    as_of: date | None
    first_day: date | None
    period: Period
    horizons: tuple[int, ...] = FEE_HORIZONS
    retention_days: tuple[int, ...] = RETENTION_DAYS
    quantiles: tuple[float, ...] = QUANTILES
    wallets: int = 0
    summary: tuple[HorizonSummary, ...] = ()
    network_fee_30d_ustx: int | None = None
    cohorts: tuple[CohortValue, ...] = ()
    retention: tuple[RetentionCurve, ...] = ()
    fee_histogram: tuple[FeeBin, ...] = ()
    days: tuple[ValueDay, ...] = ()
    definitions: dict[str, str] = field(default_factory=lambda: dict(DEFINITIONS))

    @property
    def is_empty(self) -> bool:
        return self.as_of is None


_COHORT_START = {
    "week": "(first_day - CAST(isodow(first_day) - 1 AS INTEGER))",
    "month": "CAST(date_trunc('month', first_day) AS DATE)",
}
_COHORT_END = {"week": "(cohort + 6)", "month": "last_day(cohort)"}


@dataclass(frozen=True, slots=True)
class _Sources:
    """Where the per-day rows come from: the kept aggregates, or TEMP tables of the same SELECTs over the raw table
    (a read-only look at a database whose aggregates are stale or predate the value tables)."""

    wallet_day: str = VALUE_WALLET_DAY
    day: str = VALUE_DAY
    active: str = f"SELECT day, active FROM {DAILY}"  # the growth page's active wallets per day
    kept: bool = True  # wallet_value holds the per-wallet rows


_RAW_SOURCES = _Sources(
    wallet_day="value_raw_wd",
    day="value_raw_d",
    active="SELECT day, count(DISTINCT address) AS active FROM value_raw_wd WHERE n_sent > 0 GROUP BY day",
    kept=False,
)


def _raw_sources(conn: Conn) -> _Sources:
    """The per-day rows from the raw table, as the refresh would have written them."""
    user_types = {"user_types": list(USER_TX_TYPES)}
    conn.execute(f"CREATE OR REPLACE TEMP TABLE value_raw_wd AS {VALUE_WALLET_DAY_SELECT.format(where='')}", user_types)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE value_raw_d AS {VALUE_DAY_SELECT.format(where='')}", user_types)
    return _RAW_SOURCES


def _run(conn: Conn, sql: str, params: dict) -> duckdb.DuckDBPyConnection:
    """Execute with the named parameters `sql` uses (DuckDB refuses any it does not)."""
    return conn.execute(sql, {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)})


def _bounds(conn: Conn) -> tuple[date | None, date | None]:
    """First and last stored day (the ingest record; the raw table's partitions when there is none)."""
    if has_table(conn, RECORD_TABLE):
        row = conn.execute(f"SELECT min(day), max(day) FROM {RECORD_TABLE}").fetchone()
    elif has_table(conn, TABLE):
        row = conn.execute(f"SELECT min(partition_date), max(partition_date) FROM {TABLE}").fetchone()
    else:
        row = None
    return (row[0], row[1]) if row else (None, None)


def _wallets_sql(src: _Sources, capped: bool) -> str:
    """The per-wallet rows: the kept table, or recomputed from the per-day rows (up to $as_of for an earlier day)."""
    # Addresses that only received or sponsored have no activation day: not wallets.
    if src.kept and not capped:
        return f"SELECT * FROM {WALLET_VALUE} WHERE first_day IS NOT NULL"
    rows = WALLET_VALUE_SELECT.format(source=src.wallet_day, days="AND day <= CAST($as_of AS DATE)" if capped else "")
    return f"SELECT * FROM ({rows}) WHERE first_day IS NOT NULL"


# `kept` of a wallet: the number of RETENTION_DAYS n with last_day >= first_day + n (retained at the i-th day N iff
# kept > i; RETENTION_DAYS ascend). One CASE on the day difference, longest first: a lambda over the list per
# wallet cost 2.5x as much.
_KEPT = (
    "CASE "
    + " ".join(f"WHEN last_day - first_day >= {n} THEN {i + 1}" for i, n in reversed(list(enumerate(RETENTION_DAYS))))
    + " ELSE 0 END"
)

# Working tables of one compute_value (TEMP: allowed on a read-only connection, gone with it):
#   value_w  the per-wallet rows as of $as_of: a view of wallet_value when it serves (copying its ~1.4M rows
#            cost more than the few scans of it), else a table of the rows recomputed from the per-day rows
#   value_k  the same counted by activation day, segment flags and `kept`: retention reads ~days x 48 rows
#            instead of one per wallet.
_WORK = {
    "value_w": "SELECT * EXCLUDE (address) FROM ({wallets})",  # the addresses are never shown: not copied
    "value_k": f"""SELECT first_day, {SEGMENTS["funded"][0]} AS funded, {SEGMENTS["active"][0]} AS active,
                          {SEGMENTS["value"][0]} AS value, {_KEPT} AS kept, count(*) AS n
                   FROM value_w GROUP BY ALL""",
}


def cohort_values(conn: Conn, params: dict, period: Period, first_day: date) -> list[CohortValue]:
    """Per activation cohort: funnel, fee value per horizon with its quantiles, retention per day N."""
    h_cols = []
    for h in FEE_HORIZONS:
        ripe = f"cohort_end + {h - 1} <= CAST($as_of AS DATE)"
        h_cols.append(
            f"CASE WHEN {ripe} THEN avg(fee_{h}) END AS mean_{h}, "
            f"CASE WHEN {ripe} THEN quantile_cont(fee_{h}, $quantiles) END AS q_{h}"
        )
    r_cols = [
        f"CASE WHEN cohort_end + {n} <= CAST($as_of AS DATE) "
        f"THEN coalesce(sum(n) FILTER (WHERE kept > {i}), 0) / sum(n) END AS r_{n}"
        for i, n in enumerate(RETENTION_DAYS)
    ]
    ripe30 = f"cohort_end + {TX_WINDOW - 1} <= CAST($as_of AS DATE)"
    cohort = f"{_COHORT_START[period]} AS cohort"
    sql = f"""
        WITH f AS (
            SELECT cohort, {_COHORT_END[period]} AS cohort_end, count(*) AS new,
                   count(*) FILTER (WHERE {SEGMENTS["funded"][0]}) AS funded,
                   count(*) FILTER (WHERE {SEGMENTS["active"][0]}) AS active,
                   count(*) FILTER (WHERE {SEGMENTS["value"][0]}) AS value,
                   {", ".join(h_cols)}
            FROM (SELECT *, {cohort} FROM value_w) GROUP BY cohort),
        r AS (
            SELECT cohort, {", ".join(r_cols)}
            FROM (SELECT *, {cohort}, {_COHORT_END[period]} AS cohort_end FROM value_k) GROUP BY cohort, cohort_end)
        SELECT f.cohort, f.cohort_end, f.new, f.funded,
               CASE WHEN {ripe30} THEN f.active END, CASE WHEN {ripe30} THEN f.value END,
               {", ".join(f"mean_{h}, q_{h}" for h in FEE_HORIZONS)},
               {", ".join(f"r_{n}" for n in RETENTION_DAYS)}
        FROM f JOIN r USING (cohort) ORDER BY f.cohort"""
    out = []
    for row in _run(conn, sql, params).fetchall():
        cohort_day, end, new, funded, active, value = row[:6]
        fees = []
        for i, h in enumerate(FEE_HORIZONS):
            mean, qs = row[6 + 2 * i], row[7 + 2 * i]
            # The median is the quantile 0.5 of the same list (one sort per cohort and horizon, not two).
            fees.append(FeeValue(h, mean, qs[QUANTILES.index(0.5)] if qs else None, tuple(qs) if qs else None))
        retention = tuple(row[6 + 2 * len(FEE_HORIZONS) :])
        out.append(
            CohortValue(
                cohort_day, end, cohort_day <= first_day <= end, new, funded, active, value, tuple(fees), retention
            )
        )
    return out


def _horizon_cols() -> str:
    """Fee value per horizon over the wallets activated at least N - 1 days before as_of: count, mean, median."""
    return ", ".join(
        f"count(*) FILTER (WHERE {r}), avg(fee_{h}) FILTER (WHERE {r}), median(fee_{h}) FILTER (WHERE {r})"
        for h in FEE_HORIZONS
        for r in [f"first_day + {h - 1} <= CAST($as_of AS DATE)"]
    )


# The fee_30 histogram's bin of a wallet: 0 for no fee, else 1 + the number of FEE_BIN_EDGES <= fee_30 (one CASE,
# highest edge first: a lambda over the edges per wallet cost several times as much).
_BIN = (
    "CASE WHEN fee_30 = 0 THEN 0 "
    + " ".join(f"WHEN fee_30 >= {e} THEN {i + 2}" for i, e in reversed(list(enumerate(FEE_BIN_EDGES))))
    + " ELSE 1 END"
)


def wallet_figures(conn: Conn, params: dict) -> tuple[int, list[HorizonSummary], list[FeeBin]]:
    """One scan of the per-wallet rows: how many wallets, the fee value per horizon (horizon_summary's figures)
    and the fee_30 histogram over the wallets whose first 30 days are stored (FEE_BIN_EDGES)."""
    ripe30 = f"first_day + {TX_WINDOW - 1} <= CAST($as_of AS DATE)"
    bins = ", ".join(f"count(*) FILTER (WHERE {ripe30} AND bin = {i})" for i in range(len(FEE_BIN_EDGES) + 2))
    sql = f"SELECT count(*), {_horizon_cols()}, {bins} FROM (SELECT *, {_BIN} AS bin FROM value_w)"
    row = _run(conn, sql, params).fetchone()
    assert row is not None
    k = 1 + 3 * len(FEE_HORIZONS)
    summary = [
        HorizonSummary(h, int(row[1 + 3 * i]), row[2 + 3 * i], row[3 + 3 * i]) for i, h in enumerate(FEE_HORIZONS)
    ]
    lows = (0, 1, *FEE_BIN_EDGES)
    highs = (0, *FEE_BIN_EDGES, None)
    hist = [FeeBin(lo, hi, int(row[k + i])) for i, (lo, hi) in enumerate(zip(lows, highs, strict=True))]
    return int(row[0]), summary, hist


def retention_curves(conn: Conn, params: dict) -> list[RetentionCurve]:
    """Per segment and day N: wallets for which day N (and day 29 for a segment decided then) is stored, and the
    share of them with a transaction on day N or later."""
    flags = {"all": "TRUE", "funded": "funded", "active": "active", "value": "value", "non-value": "NOT value"}
    cols = []
    for name, (_, at_29) in SEGMENTS.items():
        for i, n in enumerate(RETENTION_DAYS):
            ripe = f"first_day + {max(n, TX_WINDOW - 1) if at_29 else n} <= CAST($as_of AS DATE)"
            cols.append(
                f"coalesce(sum(n) FILTER (WHERE {flags[name]} AND {ripe}), 0), "
                f"coalesce(sum(n) FILTER (WHERE {flags[name]} AND {ripe} AND kept > {i}), 0)"
            )
    row = _run(conn, f"SELECT {', '.join(cols)} FROM value_k", params).fetchone()
    assert row is not None
    curves, k = [], 0
    for name in SEGMENTS:
        counts, shares = [], []
        for _ in RETENTION_DAYS:
            n_all, n_kept = int(row[k]), int(row[k + 1])
            counts.append(n_all)
            shares.append(n_kept / n_all if n_all else None)
            k += 2
        curves.append(RetentionCurve(name, tuple(counts), tuple(shares)))
    return curves


def value_days(conn: Conn, params: dict, src: _Sources) -> list[ValueDay]:
    """The per-day series up to as_of: network fees and their trailing 30 days, sponsored share, failed rate,
    new and returning wallets (active wallets of the day from the growth page's `agg_day_wallets`), STX
    transferred."""
    sql = f"""
        WITH d AS (SELECT day, sum(fee_ustx) AS fee, sum(n_user) AS n_user, sum(n_sponsored) AS n_sponsored,
                          sum(n_failed) AS n_failed, sum(stx_transferred_ustx) AS stx
                   FROM {src.day} WHERE day <= CAST($as_of AS DATE) GROUP BY day),
        act AS ({src.active}),
        nw AS (SELECT first_day AS day, count(*) AS new FROM value_w GROUP BY first_day)
        SELECT d.day, CAST(d.fee AS BIGINT),
               CASE WHEN d.day - 29 >= CAST($first AS DATE) THEN CAST(sum(d.fee) OVER (
                   ORDER BY d.day RANGE BETWEEN INTERVAL 29 DAY PRECEDING AND CURRENT ROW) AS BIGINT) END,
               CAST(d.n_user AS BIGINT), d.n_sponsored / nullif(d.n_user, 0), d.n_failed / nullif(d.n_user, 0),
               coalesce(nw.new, 0), coalesce(act.active, 0) - coalesce(nw.new, 0), CAST(d.stx AS BIGINT)
        FROM d LEFT JOIN act USING (day) LEFT JOIN nw USING (day)
        ORDER BY d.day"""
    return [ValueDay(*r) for r in _run(conn, sql, params).fetchall()]


def compute_value(
    conn: Conn, as_of: date | None = None, period: Period | None = None, fresh: bool | None = None
) -> ValueData:
    """The value page's data as of `as_of` (default and upper bound: the last stored day). The kept per-wallet
    table serves the last stored day; an earlier `as_of` recomputes the wallets from the per-day rows up to it.
    When the aggregates are stale or lack the value tables (a read-only look at a database no refresh has reached),
    the same SELECTs run over the raw table into TEMP tables: the same figures, at a full scan's cost.
    Cohorts are weekly for a history up to WEEKLY_UNTIL_DAYS days, monthly beyond, unless `period` says.
    `fresh`: the caller's `aggregates_fresh(conn)`, when it has it (each look costs catalog queries)."""
    first, last = _bounds(conn)
    if first is None or last is None:
        return ValueData(as_of=None, first_day=None, period=period or "week")
    as_of = min(as_of, last) if as_of else last
    period = period or ("week" if (as_of - first).days < WEEKLY_UNTIL_DAYS else "month")
    params = {
        "as_of": as_of,
        "first": first,
        "funded_min": FUNDED_MIN_USTX,
        "active_min": ACTIVE_MIN_TX,
        "value_min": VALUE_MIN_FEE_USTX,
        "quantiles": list(QUANTILES),
    }
    views: set[str] = set()
    try:
        kept = value_aggregates_exist(conn) and (aggregates_fresh(conn) if fresh is None else fresh)
        src = _Sources() if kept else _raw_sources(conn)
        capped = as_of < last
        wallets = _wallets_sql(src, capped=capped)
        for name, sql in _WORK.items():
            # wallet_value as it is: a view (its rows are read by a few scans); anything computed: a table, once.
            kind = "VIEW" if name == "value_w" and src.kept and not capped else "TABLE"
            if kind == "VIEW":
                views.add(name)
            _run(conn, f"CREATE OR REPLACE TEMP {kind} {name} AS {sql.format(wallets=wallets)}", params)
        n_wallets, summary, histogram = wallet_figures(conn, params)
        days = value_days(conn, params, src)
        return ValueData(
            as_of=as_of,
            first_day=first,
            period=period,
            wallets=n_wallets,
            summary=tuple(summary),
            network_fee_30d_ustx=days[-1].trailing_30_fee_ustx if days and days[-1].day == as_of else None,
            cohorts=tuple(cohort_values(conn, params, period, first)),
            retention=tuple(retention_curves(conn, params)),
            fee_histogram=tuple(histogram),
            days=tuple(days),
        )
    finally:
        # value_k (reads value_w) goes first; DuckDB refuses DROP TABLE on a view and the reverse.
        for name in (*reversed(_WORK), _RAW_SOURCES.wallet_day, _RAW_SOURCES.day):
            conn.execute(f"DROP {'VIEW' if name in views else 'TABLE'} IF EXISTS temp.{name}")
