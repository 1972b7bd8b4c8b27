"""Dashboard metrics: every figure is computed by DuckDB SQL over the working tables of `prepare`.

Each public function works on its own (it builds and drops the working tables) or inside
`compute_all`, which builds them once and passes them as `ctx`. Trailing windows end on `as_of`,
which defaults to the last stored day (not the wall clock) so results are reproducible.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb

from stx_pipeline.dashboard.models import (
    ChainTotals,
    CohortCell,
    Coverage,
    DailyWallets,
    DashboardData,
    DayCount,
    DayFees,
    PeriodWallets,
    SummaryRow,
    TopContract,
    TopSender,
)
from stx_pipeline.dashboard.prepare import Prepared, prepared, using
from stx_pipeline.schema import DAY_EXPR, MINED_EXPR, TABLE
from stx_pipeline.storage.activity_metrics import PERIOD_SQL, WEEK_SQL
from stx_pipeline.storage.aggregates import TYPE_DAY, aggregates_fresh

Conn = duckdb.DuckDBPyConnection

SUMMARY_WINDOWS: tuple[int, ...] = (7, 30, 90)
RETENTION_DAYS = 30
TOP_LIMIT = 20
TOP_DAYS = 30  # the top tables' trailing window
MAX_COHORTS = 52  # one year of weekly cohorts keeps the heatmap readable and the page small

# Monday of the ISO week of a DATE column, as a DATE (date_trunc returns a TIMESTAMP).
_WEEK = WEEK_SQL

# Every calendar day of the stored range, covered or not.
_DAYS = """
    SELECT CAST(range AS DATE) AS day
    FROM range(CAST($first AS TIMESTAMP), CAST($last AS TIMESTAMP) + INTERVAL 1 DAY, INTERVAL 1 DAY)
"""


def _week(col: str) -> str:
    return _WEEK.format(col=col)


def coverage(conn: Conn, ctx: Prepared | None = None) -> Coverage:
    with using(conn, ctx) as p:
        return p.coverage


def chain_totals(conn: Conn, fresh: bool | None = None) -> ChainTotals:
    """All stored rows, every type (system transactions included) and status. `fresh`: the caller's
    `aggregates_fresh(conn)`, when it has it."""
    # The per-day aggregates hold every row's count and fee when they are up to date; else the raw table.
    fresh = aggregates_fresh(conn) if fresh is None else fresh
    source, count = (TYPE_DAY, "sum(n_tx)") if fresh else (TABLE, "count(*)")
    n, fees = conn.execute(f"SELECT coalesce({count}, 0), coalesce(sum(fee_ustx), 0) FROM {source}").fetchone() or (
        0,
        0,
    )
    return ChainTotals(transactions=int(n), fees_ustx=int(fees))


def daily_wallets(conn: Conn, ctx: Prepared | None = None) -> list[DailyWallets]:
    with using(conn, ctx) as p:
        cov = p.coverage
        if cov.is_empty:
            return []
        # Active wallets and the trailing-30-day MAU come per day from the activity table (kept incrementally:
        # storage.activity_metrics); new wallets from the first-seen dates within the stored range.
        sql = f"""
            WITH days AS ({_DAYS}),
            nw AS (
                SELECT first_day AS day, count(*) AS new FROM {p.first_seen}
                WHERE first_day BETWEEN CAST($first AS DATE) AND CAST($last AS DATE) GROUP BY first_day
            ),
            base AS (
                SELECT d.day, c.day IS NOT NULL AS covered,
                       CASE WHEN c.day IS NOT NULL THEN coalesce(dw.active, 0) END AS active,
                       CASE WHEN c.day IS NOT NULL THEN coalesce(nw.new, 0) END AS new,
                       coalesce(dw.mau, 0) AS mau_raw
                FROM days d
                LEFT JOIN {p.covered_days} c ON c.day = d.day
                LEFT JOIN {p.daily} dw ON dw.day = d.day
                LEFT JOIN nw ON nw.day = d.day
            )
            SELECT day, covered, active, new,
                   CASE WHEN day >= CAST($first AS DATE) + 6 THEN avg(active) OVER w7 END,
                   CASE WHEN day >= CAST($first AS DATE) + 6 THEN avg(new) OVER w7 END,
                   CASE WHEN covered AND day >= CAST($first AS DATE) + 29 THEN CAST(mau_raw AS BIGINT) END,
                   CASE WHEN covered AND day >= CAST($first AS DATE) + 29 AND mau_raw > 0
                        THEN active / mau_raw END
            FROM base
            WINDOW w7 AS (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)
            ORDER BY day
        """
        rows = conn.execute(sql, {"first": cov.first_day, "last": cov.last_day}).fetchall()
        return [DailyWallets(*row) for row in rows]


def _period_wallets(conn: Conn, p: Prepared, kind: str) -> list[PeriodWallets]:
    # Periods come from the stored days so a period with stored days but no wallet shows 0; the distinct counts
    # are kept per period (storage.activity_metrics.derive_periods).
    start_of = PERIOD_SQL[kind]
    length_sql = {"week": "7", "month": "(last_day({col}) - {col} + 1)"}[kind]
    sql = f"""
        WITH stored AS (
            SELECT {start_of.format(col="day")} AS start, count(*) AS n FROM {p.covered_days} GROUP BY 1
        )
        SELECT s.start, coalesce(a.active, 0), s.n = {length_sql.format(col="s.start")}
        FROM stored s LEFT JOIN {p.periods} a ON a.kind = $kind AND a.start = s.start
        ORDER BY s.start
    """
    return [PeriodWallets(*row) for row in conn.execute(sql, {"kind": kind}).fetchall()]


def weekly_wallets(conn: Conn, ctx: Prepared | None = None) -> list[PeriodWallets]:
    with using(conn, ctx) as p:
        return _period_wallets(conn, p, "week")


def monthly_wallets(conn: Conn, ctx: Prepared | None = None) -> list[PeriodWallets]:
    with using(conn, ctx) as p:
        return _period_wallets(conn, p, "month")


@dataclass(frozen=True, slots=True)
class WindowWallets:
    """A TEMP table of the wallets active in trailing windows ending on `as_of`: per wallet (`address`), its fees
    `f{n}` over the days of each window n of `fees` and its transactions `t{n}` over those of each window n of
    `ranked`, NULL when it was not active in the window."""

    name: str
    as_of: date
    fees: tuple[int, ...]
    ranked: tuple[int, ...]

    def covers(self, as_of: date, fees: Iterable[int], ranked: Iterable[int]) -> bool:
        return self.as_of == as_of and set(fees) <= set(self.fees) and set(ranked) <= set(self.ranked)


def _window_bounds(cov: Coverage, as_of: date, days: int) -> tuple[date, date]:
    """The days of the trailing `days`-day window ending on `as_of`, clipped to the stored range."""
    lo, hi = as_of - timedelta(days=days - 1), as_of
    if cov.first_day is not None and cov.last_day is not None:
        lo, hi = max(lo, cov.first_day), min(hi, cov.last_day)
    return lo, hi


@contextmanager
def window_wallets(
    conn: Conn, p: Prepared, as_of: date, fees: Iterable[int] = (), ranked: Iterable[int] = ()
) -> Iterator[WindowWallets]:
    """Group the longest window's wallet-days by wallet once, with a sum per window (one hash aggregate over ~1M
    addresses at 50M rows, shared by the summary and the top senders); dropped afterwards. Only the sums a figure
    needs per wallet are kept (fees for the summary's medians, transactions for the top senders' ranking): each
    costs, and the windows' totals need no grouping."""
    cols = [("fee_ustx", "f", n) for n in sorted({int(n) for n in fees})]
    cols += [("n_tx", "t", n) for n in sorted({int(n) for n in ranked})]
    widest = max(n for _, _, n in cols)
    name = f"stx_dash_ww_{uuid.uuid4().hex[:12]}"
    lo, hi = _window_bounds(p.coverage, as_of, widest)
    # Constant bounds: DuckDB's zone maps on `day` skip the rest of the history. The widest window is every row
    # read: no filter for it.
    sums = ", ".join(
        f"sum({col}) AS {short}{n}"
        if n == widest
        else f"sum({col}) FILTER (WHERE day >= CAST($as_of AS DATE) - {n - 1}) AS {short}{n}"
        for col, short, n in cols
    )
    try:
        conn.execute(
            f"""CREATE TEMP TABLE {name} AS SELECT address, {sums} FROM {p.wallet_day}
                WHERE day BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE) GROUP BY address""",
            {"lo": lo, "hi": hi} | ({"as_of": as_of} if "$as_of" in sums else {}),  # DuckDB refuses unused ones
        )
        yield WindowWallets(name, as_of, tuple(sorted(set(fees))), tuple(sorted(set(ranked))))
    finally:
        with suppress(duckdb.Error):  # never mask the original error; temp tables die with the connection
            conn.execute(f"DROP TABLE IF EXISTS temp.{name}")


@contextmanager
def _using_windows(
    conn: Conn, p: Prepared, as_of: date, ww: WindowWallets | None, fees: Iterable[int] = (), ranked: Iterable[int] = ()
) -> Iterator[WindowWallets]:
    """The caller's per-wallet window table when it covers these windows as of `as_of`, else one built for them."""
    if ww is not None and ww.covers(as_of, fees, ranked):
        yield ww
        return
    with window_wallets(conn, p, as_of, fees, ranked) as fresh:
        yield fresh


def summary(
    conn: Conn,
    as_of: date | None = None,
    windows: tuple[int, ...] = SUMMARY_WINDOWS,
    ctx: Prepared | None = None,
    ww: WindowWallets | None = None,
) -> list[SummaryRow]:
    """Trailing windows ending on `as_of` (inclusive).

    30-day retention of an n-day window: the cohort is the wallets first seen in the n days that
    end 30 days before `as_of` (so each had 30 full days to come back); retained means at least
    one more active day 1 to 30 days after its first day.
    """
    with using(conn, ctx) as p:
        cov = p.coverage
        as_of = as_of or cov.last_day
        if as_of is None:
            return []
        with _using_windows(conn, p, as_of, ww, fees=windows) as w:
            return _summary(conn, p, as_of, windows, w)


def _summary(conn: Conn, p: Prepared, as_of: date, windows: tuple[int, ...], w: WindowWallets) -> list[SummaryRow]:
    cov = p.coverage
    # Per window: its wallets' count, mean and median fee from the per-wallet sums; its totals from the rows.
    per_window_act = " UNION ALL ".join(
        f"SELECT {int(n)} AS n, count(f{n}) AS active, (SELECT t{n} FROM totals) AS n_tx, "
        f"(SELECT ok{n} FROM totals) AS n_ok, sum(f{n}) AS fee, avg(f{n}) AS mean_fee, median(f{n}) AS median_fee "
        f"FROM {w.name}"
        for n in windows
    )
    totals = ", ".join(
        f"sum({col}) FILTER (WHERE day >= CAST($as_of AS DATE) - {n - 1}) AS {short}{n}"
        for n in windows
        for col, short in (("n_tx", "t"), ("n_ok", "ok"))
    )
    sql = f"""
        WITH bounds AS (
            SELECT n,
                   CAST($as_of AS DATE) - (n - 1) AS start, CAST($as_of AS DATE) AS stop,
                   CAST($as_of AS DATE) - {RETENTION_DAYS} - (n - 1) AS c_start,
                   CAST($as_of AS DATE) - {RETENTION_DAYS} AS c_stop
            FROM (SELECT unnest(CAST($windows AS INTEGER[])) AS n)
        ),
        totals AS (
            SELECT {totals} FROM {p.wallet_day} WHERE day BETWEEN CAST($wlo AS DATE) AND CAST($whi AS DATE)
        ),
        act AS ({per_window_act}),
        fs AS (
            SELECT address, first_day FROM {p.first_seen}
            WHERE first_day BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE)
        ),
        fresh AS (
            SELECT b.n, count(f.address) AS new
            FROM bounds b LEFT JOIN fs f ON f.first_day BETWEEN b.start AND b.stop
            GROUP BY b.n
        ),
        -- retained: another active day 1 to 30 days after the first (within the stored range)
        returned AS (
            SELECT DISTINCT f.address FROM fs f JOIN {p.wallet_day} w ON w.address = f.address
            WHERE w.day BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE)
              AND w.day > f.first_day AND w.day <= f.first_day + {RETENTION_DAYS}
        ),
        ret AS (
            SELECT b.n, count(f.address) AS size,
                   count(f.address) FILTER (WHERE f.address IN (SELECT address FROM returned)) AS kept
            FROM bounds b LEFT JOIN fs f ON f.first_day BETWEEN b.c_start AND b.c_stop
            GROUP BY b.n
        )
        SELECT b.n, b.start, b.stop, b.start >= CAST($first AS DATE),
               coalesce(a.active, 0), fr.new,
               coalesce(a.n_tx, 0), coalesce(a.n_ok, 0), coalesce(a.fee, 0),
               a.mean_fee, CAST(a.median_fee AS DOUBLE),
               b.c_start, b.c_stop, r.size, CASE WHEN r.size > 0 THEN r.kept / r.size END
        FROM bounds b
        LEFT JOIN act a ON a.n = b.n
        JOIN fresh fr ON fr.n = b.n
        JOIN ret r ON r.n = b.n
        ORDER BY b.n
    """
    # The days every retention cohort reads (the earliest one's start .. as_of), clipped to the stored range.
    lo, hi = _window_bounds(cov, as_of, RETENTION_DAYS + max(windows))
    wlo, whi = _window_bounds(cov, as_of, max(windows))
    params = {"as_of": as_of, "windows": list(windows), "first": cov.first_day, "lo": lo, "hi": hi}
    params |= {"wlo": wlo, "whi": whi}
    rows = conn.execute(sql, params).fetchall()
    return [
        SummaryRow(
            days=n,
            start=start,
            end=stop,
            complete=bool(complete),
            active_wallets=int(active),
            new_wallets=int(new),
            transactions=int(n_tx),
            successful=int(n_ok),
            fees_ustx=int(fee),
            mean_fee_per_wallet_ustx=mean_fee,
            median_fee_per_wallet_ustx=median_fee,
            retention_cohort_start=c_start,
            retention_cohort_end=c_stop,
            retention_cohort_size=int(size),
            retention_30d=retention,
        )
        for (
            n,
            start,
            stop,
            complete,
            active,
            new,
            n_tx,
            n_ok,
            fee,
            mean_fee,
            median_fee,
            c_start,
            c_stop,
            size,
            retention,
        ) in rows
    ]


def cohort_retention(
    conn: Conn, max_cohorts: int | None = MAX_COHORTS, ctx: Prepared | None = None
) -> list[CohortCell]:
    """Weekly cohorts (ISO week of first appearance); cell k = share of the cohort active in week k.

    Only weeks whose 7 days are all stored get a cell, so the running week and weeks with a gap
    never show a misleadingly low share.
    """
    with using(conn, ctx) as p:
        if p.coverage.is_empty:
            return []
        # Cohort sizes from the first-seen dates within the stored range; cells kept per (cohort, week) by
        # storage.activity_metrics.derive_cohorts.
        sql = f"""
            WITH complete AS (
                SELECT {_week("day")} AS wk FROM {p.covered_days} GROUP BY 1 HAVING count(*) = 7
            ),
            sizes AS (
                SELECT {_week("first_day")} AS cohort, count(*) AS size FROM {p.first_seen}
                WHERE first_day BETWEEN CAST($first AS DATE) AND CAST($last AS DATE) GROUP BY cohort
            ),
            kept AS (SELECT * FROM sizes ORDER BY cohort DESC LIMIT $max_cohorts)
            SELECT k.cohort, k.size, CAST((c.wk - k.cohort) // 7 AS INTEGER) AS week,
                   coalesce(a.active, 0), coalesce(a.active, 0) / k.size
            FROM kept k
            JOIN complete c ON c.wk >= k.cohort
            LEFT JOIN {p.cohorts} a ON a.cohort = k.cohort AND a.wk = c.wk
            ORDER BY k.cohort, week
        """
        limit = max_cohorts if max_cohorts is not None else 2**62
        params = {"max_cohorts": limit, "first": p.coverage.first_day, "last": p.coverage.last_day}
        return [CohortCell(*row) for row in conn.execute(sql, params).fetchall()]


def _tx_by(conn: Conn, column: str, ctx: Prepared | None) -> list[DayCount]:
    with using(conn, ctx) as p:
        sql = f"""
            SELECT day, {column}, CAST(sum(n_tx) AS BIGINT) FROM {p.type_day}
            WHERE day IN (SELECT day FROM {p.covered_days})
            GROUP BY ALL ORDER BY day, {column}
        """
        return [DayCount(*row) for row in conn.execute(sql).fetchall()]


def tx_by_type(conn: Conn, ctx: Prepared | None = None) -> list[DayCount]:
    """Transactions per stored day by tx_type, all types (system transactions included)."""
    return _tx_by(conn, "tx_type", ctx)


def tx_by_status(conn: Conn, ctx: Prepared | None = None) -> list[DayCount]:
    return _tx_by(conn, "tx_status", ctx)


def fees_per_day(conn: Conn, ctx: Prepared | None = None) -> list[DayFees]:
    with using(conn, ctx) as p:
        sql = f"""
            SELECT day, CAST(sum(n_tx) AS BIGINT), CAST(sum(fee_ustx) AS BIGINT) FROM {p.type_day}
            WHERE day IN (SELECT day FROM {p.covered_days})
            GROUP BY day ORDER BY day
        """
        return [DayFees(*row) for row in conn.execute(sql).fetchall()]


def top_senders(
    conn: Conn,
    days: int = TOP_DAYS,
    limit: int = TOP_LIMIT,
    as_of: date | None = None,
    ctx: Prepared | None = None,
    ww: WindowWallets | None = None,
) -> list[TopSender]:
    """Wallets with the most mined user transactions in the trailing `days` days (ties by address)."""
    with using(conn, ctx) as p:
        as_of = as_of or p.coverage.last_day
        if as_of is None:
            return []
        with _using_windows(conn, p, as_of, ww, ranked=(days,)) as w:
            # The top wallets by the per-wallet sums; their other figures from their rows (a few hundred).
            sql = f"""
                WITH top AS (
                    SELECT address, t{days} AS n_tx FROM {w.name}
                    WHERE t{days} IS NOT NULL ORDER BY n_tx DESC, address LIMIT $limit
                ),
                per_wallet AS (
                    SELECT address, sum(n_ok) AS n_ok, sum(fee_ustx) AS fee, count(DISTINCT day) AS days
                    FROM {p.wallet_day}
                    WHERE day BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE)
                      AND address IN (SELECT address FROM top)
                    GROUP BY address
                )
                SELECT t.address, t.n_tx, a.n_ok, a.fee, a.days, f.first_day
                FROM top t JOIN per_wallet a ON a.address = t.address JOIN {p.first_seen} f ON f.address = t.address
                ORDER BY t.n_tx DESC, t.address
            """
            lo, hi = _window_bounds(p.coverage, as_of, days)
            rows = conn.execute(sql, {"limit": limit, "lo": lo, "hi": hi}).fetchall()
        return [TopSender(a, int(n), int(ok), int(fee), int(d), first) for a, n, ok, fee, d, first in rows]


def top_contracts(
    conn: Conn, days: int = TOP_DAYS, limit: int = TOP_LIMIT, as_of: date | None = None, ctx: Prepared | None = None
) -> list[TopContract]:
    """Contracts with the most mined contract calls in the trailing `days` days (ties by id)."""
    with using(conn, ctx) as p:
        as_of = as_of or p.coverage.last_day
        if as_of is None:
            return []
        # partition_date (burn-block day) brackets the block-time day within a day or two; filtering
        # on it first lets DuckDB skip row groups outside the window.
        sql = f"""
            WITH calls AS MATERIALIZED (
                SELECT contract_id, function_name, sender_address, tx_status, fee_ustx
                FROM {TABLE}
                WHERE partition_date BETWEEN CAST($as_of AS DATE) - ($days + 1) AND CAST($as_of AS DATE) + 1
                  AND tx_type = 'contract_call' AND contract_id IS NOT NULL AND {MINED_EXPR}
                  AND {DAY_EXPR} BETWEEN CAST($as_of AS DATE) - ($days - 1) AND CAST($as_of AS DATE)
            ),
            -- the ranking needs no distinct count: callers and the top function only for the top contracts' calls
            per_c AS (
                SELECT contract_id, count(*) AS calls, count(*) FILTER (WHERE tx_status = 'success') AS ok,
                       coalesce(sum(fee_ustx), 0) AS fee
                FROM calls GROUP BY contract_id ORDER BY calls DESC, contract_id LIMIT $limit
            ),
            top_calls AS (SELECT * FROM calls WHERE contract_id IN (SELECT contract_id FROM per_c)),
            callers AS (
                SELECT contract_id, count(DISTINCT sender_address) AS callers FROM top_calls GROUP BY contract_id
            ),
            per_fn AS (
                SELECT contract_id, function_name, count(*) AS n FROM top_calls GROUP BY ALL
            ),
            top_fn AS (
                SELECT contract_id, first(function_name ORDER BY n DESC, function_name NULLS LAST) AS fn
                FROM per_fn GROUP BY contract_id
            )
            SELECT c.contract_id, c.calls, c.ok, k.callers, c.fee, f.fn
            FROM per_c c JOIN callers k ON k.contract_id = c.contract_id JOIN top_fn f ON f.contract_id = c.contract_id
            ORDER BY c.calls DESC, c.contract_id
        """
        rows = conn.execute(sql, {"as_of": as_of, "days": days, "limit": limit}).fetchall()
        return [TopContract(cid, int(n), int(ok), int(callers), int(fee), fn) for cid, n, ok, callers, fee, fn in rows]


def compute_all(conn: Conn, as_of: date | None = None, fresh: bool | None = None) -> DashboardData:
    """Every figure of index.html. `fresh`: the caller's `aggregates_fresh(conn)`, when it has it (each look
    costs several catalog queries)."""
    fresh = aggregates_fresh(conn) if fresh is None else fresh
    totals = chain_totals(conn, fresh)
    with prepared(conn, fresh) as p:
        as_of = as_of or p.coverage.last_day
        # The summary's windows and the top senders' days from one grouping of the wallet-days by wallet.
        per_wallet = window_wallets(conn, p, as_of, SUMMARY_WINDOWS, (TOP_DAYS,)) if as_of else nullcontext(None)
        with per_wallet as ww:
            return DashboardData(
                coverage=p.coverage,
                as_of=as_of,
                totals=totals,
                summary=summary(conn, as_of, ctx=p, ww=ww),
                daily=daily_wallets(conn, ctx=p),
                weekly=weekly_wallets(conn, ctx=p),
                monthly=monthly_wallets(conn, ctx=p),
                tx_by_type=tx_by_type(conn, ctx=p),
                tx_by_status=tx_by_status(conn, ctx=p),
                fees=fees_per_day(conn, ctx=p),
                cohorts=cohort_retention(conn, ctx=p),
                top_senders=top_senders(conn, days=TOP_DAYS, as_of=as_of, ctx=p, ww=ww),
                top_contracts=top_contracts(conn, as_of=as_of, ctx=p),
                top_days=TOP_DAYS,
            )
