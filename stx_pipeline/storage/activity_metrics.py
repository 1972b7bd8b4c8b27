"""The dashboard's wallet-activity figures as small tables kept incrementally from the per-day aggregates.

    agg_day_wallets     day, active, mau    wallets active on the block-time day, and in the 30 days ending on it
    agg_period_wallets  kind, start, active distinct wallets active in each ISO week ('week', its Monday) and
                        calendar month ('month', its first day), counting only days within the stored range
    agg_cohort_week     cohort, wk, active  wallets first seen in ISO week `cohort` (wallet_first_seen) that were
                        active in ISO week `wk`

Every figure of a day, a period or a cohort cell is a function of few inputs, so a refresh recomputes only what
its changed inputs reach (aggregates._refresh_chunk calls `maintain` inside its transaction):

- `active` and `mau` of day t depend on the wallet-days in [t - 29, t]: a change on days D recomputes the days in
  [d, d + 29] for each d in D, reading only the wallet-days within 29 days before those (`derive_daily`).
- A period's count depends on the wallet-days inside it and on the stored range (the clip): the periods holding a
  changed day, or a day that entered or left the range, are recounted (`derive_periods`).
- A cohort cell (c, w) depends on which wallets were active in week w and on each wallet's first week: the weeks
  holding a changed day are recounted for every cohort, and a wallet whose first-seen date moved to another week
  (a re-fetched old day) leaves its old cohort's cells and joins its new one's in every other week it is active
  in, one per cell (`derive_cohorts`). A wallet new to the aggregates has all its activity in the changed days, so
  only the second case reads outside them, and only the moved wallets' rows.

The same functions over the whole range build the from-scratch tables (the dashboard's fallback over the raw
table, and the tests' reference). No Dagster here.
"""

from __future__ import annotations

import datetime as dt

import duckdb

DAILY = "agg_day_wallets"
PERIODS = "agg_period_wallets"
COHORTS = "agg_cohort_week"
# The stored range (first and last day with rows in the ingest record) the period counts were clipped to.
BOUNDS = "agg_activity_bounds"

MAU_DAYS = 30

# Monday of the ISO week of a DATE column, as a DATE (date_trunc returns a TIMESTAMP); the month's first day.
WEEK_SQL = "({col} - CAST(isodow({col}) - 1 AS INTEGER))"
MONTH_SQL = "CAST(date_trunc('month', {col}) AS DATE)"
PERIOD_SQL = {"week": WEEK_SQL, "month": MONTH_SQL}


def week(col: str) -> str:
    return WEEK_SQL.format(col=col)


def create_sql(prefix: str = "CREATE TABLE IF NOT EXISTS", names: dict[str, str] | None = None) -> tuple[str, ...]:
    n = names or {"daily": DAILY, "periods": PERIODS, "cohorts": COHORTS}
    return (
        f"{prefix} {n['daily']} (day DATE NOT NULL, active BIGINT NOT NULL, mau BIGINT NOT NULL)",
        f"{prefix} {n['periods']} (kind VARCHAR NOT NULL, start DATE NOT NULL, active BIGINT NOT NULL)",
        f"{prefix} {n['cohorts']} (cohort DATE NOT NULL, wk DATE NOT NULL, active BIGINT NOT NULL)",
    )


def ensure_activity_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for sql in create_sql():
        conn.execute(sql)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {BOUNDS} (lo DATE, hi DATE)")


def day_ranges(days: list[dt.date], reach: int = MAU_DAYS - 1) -> list[tuple[dt.date, dt.date]]:
    """The days whose daily figures a change on `days` reaches ([d, d + reach] each), merged into disjoint runs:
    a refresh of day 100 and day 2,000 reads two small windows, not the history between them."""
    runs: list[tuple[dt.date, dt.date]] = []
    step = dt.timedelta(days=reach)
    for d in sorted(set(days)):
        if runs and d <= runs[-1][1] + dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], max(runs[-1][1], d + step))
        else:
            runs.append((d, d + step))
    return runs


def derive_daily(conn: duckdb.DuckDBPyConnection, wallet_day: str, target: str, lo: dt.date, hi: dt.date) -> None:
    """Replace `target`'s rows for every calendar day in [lo, hi] from the wallet-days of [lo - 29, hi].

    MAU without a 30x self-join: an active day keeps its wallet "in the month" until 30 days later or its next
    active day, whichever is first. A wallet's spans never overlap, so a running sum of +1/-1 edges is the distinct
    count of the trailing 30 days; a wallet-day before lo - 29 has both its edges before lo and changes nothing.
    A wallet can have two rows of one day (two partitions: a block-time day spills into the next); the first's
    edges then cancel on that day and it is not counted active, so no DISTINCT pass is needed (1.3x faster)."""
    params = {"lo": lo, "hi": hi, "from": lo - dt.timedelta(days=MAU_DAYS - 1)}
    conn.execute(
        f"DELETE FROM {target} WHERE day BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE)", {"lo": lo, "hi": hi}
    )
    conn.execute(
        f"""INSERT INTO {target}
            WITH nx AS (
                SELECT day, lead(day) OVER (PARTITION BY address ORDER BY day) AS next_day FROM {wallet_day}
                WHERE day BETWEEN CAST($from AS DATE) AND CAST($hi AS DATE)
            ),
            edges AS (
                SELECT day, sum(delta) AS delta, sum(active) AS active FROM (
                    SELECT day, 1 AS delta, CASE WHEN next_day = day THEN 0 ELSE 1 END AS active FROM nx
                    UNION ALL
                    SELECT least(day + {MAU_DAYS}, coalesce(next_day, day + {MAU_DAYS})), -1, 0 FROM nx
                ) GROUP BY day
            ),
            days AS (
                SELECT CAST(range AS DATE) AS day
                FROM range(CAST(CAST($from AS DATE) AS TIMESTAMP), CAST(CAST($hi AS DATE) AS TIMESTAMP)
                           + INTERVAL 1 DAY, INTERVAL 1 DAY)
            ),
            run AS (
                SELECT d.day, CAST(coalesce(e.active, 0) AS BIGINT) AS active,
                       CAST(sum(coalesce(e.delta, 0)) OVER (ORDER BY d.day) AS BIGINT) AS mau
                FROM days d LEFT JOIN edges e ON e.day = d.day
            )
            SELECT day, active, mau FROM run WHERE day BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE)""",
        params,
    )


def derive_periods(
    conn: duckdb.DuckDBPyConnection,
    wallet_day: str,
    target: str,
    days: str,
    clip: tuple[dt.date | None, dt.date | None],
) -> None:
    """Recount, in `target`, every week and month holding a day of the temp table `days` (column `day`): distinct
    wallets active on its days within `clip` (the stored range; activity mined after the last stored day waits
    for that day). A period with no wallet has no row."""
    lo, hi = clip
    for kind, expr in PERIOD_SQL.items():
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE act_periods AS SELECT DISTINCT {expr.format(col='day')} AS start FROM {days}"
        )
        conn.execute(f"DELETE FROM {target} WHERE kind = ? AND start IN (SELECT start FROM act_periods)", [kind])
        bounds = conn.execute("SELECT min(start), max(start) FROM act_periods").fetchone()
        if lo is None or hi is None or bounds is None or bounds[0] is None:
            continue
        # The day filter spans the periods' days (a month: up to its 31st) so DuckDB skips other row groups.
        params = {"kind": kind, "lo": lo, "hi": hi, "plo": bounds[0], "phi": bounds[1] + dt.timedelta(days=31)}
        conn.execute(
            f"""INSERT INTO {target}
                SELECT $kind, {expr.format(col="day")} AS start, count(DISTINCT address)
                FROM {wallet_day}
                WHERE day BETWEEN CAST($plo AS DATE) AND CAST($phi AS DATE)
                  AND day BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE)
                  AND {expr.format(col="day")} IN (SELECT start FROM act_periods)
                GROUP BY start""",
            params,
        )
    conn.execute("DROP TABLE IF EXISTS temp.act_periods")


def derive_cohorts(
    conn: duckdb.DuckDBPyConnection,
    wallet_day: str,
    first_seen: str,
    target: str,
    days: str,
    cohorts: str,
    moved: tuple[str, str] | None = None,
) -> None:
    """Recount, in `target`, the cells of every week holding a day of the temp table `days` (all cohorts), and
    every cell of the cohorts (Mondays) in the temp table `cohorts` (all weeks). `moved`, when given, names two
    temp tables: wallets whose first day changed (address, old_first, new_first) and their wallet-days (address,
    day) from their old first day on; each that moved to another week moves its cells in the other weeks."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE act_weeks AS SELECT DISTINCT {week('day')} AS wk FROM {days}")
    conn.execute(
        f"DELETE FROM {target} WHERE wk IN (SELECT wk FROM act_weeks) OR cohort IN (SELECT cohort FROM {cohorts})"
    )
    bounds = conn.execute("SELECT min(wk), max(wk) FROM act_weeks").fetchone()
    if bounds is not None and bounds[0] is not None:
        conn.execute(
            f"""INSERT INTO {target}
                WITH ww AS (
                    SELECT DISTINCT address, {week("day")} AS wk FROM {wallet_day}
                    WHERE day BETWEEN CAST($lo AS DATE) AND CAST($hi AS DATE) + 6
                      AND {week("day")} IN (SELECT wk FROM act_weeks)
                )
                SELECT {week("f.first_day")} AS cohort, ww.wk, count(*)
                FROM ww JOIN {first_seen} f ON f.address = ww.address
                GROUP BY ALL""",
            {"lo": bounds[0], "hi": bounds[1]},
        )
    if moved is not None:
        _move_cohort_cells(conn, target, *moved)
    # The moved cohorts' other weeks: only their wallets' rows are read (a scan of the address column), and only
    # when a wallet moved to another week (a daily top-up moves none).
    moved_cohort = conn.execute(f"SELECT min(cohort) FROM {cohorts}").fetchone()
    if moved_cohort is None or moved_cohort[0] is None:
        conn.execute("DROP TABLE IF EXISTS temp.act_weeks")
        return
    conn.execute(
        f"""INSERT INTO {target}
            WITH members AS (
                SELECT address, {week("first_day")} AS cohort FROM {first_seen}
                WHERE {week("first_day")} IN (SELECT cohort FROM {cohorts})
            ),
            ww AS (
                -- a member is active only from its first day, in or after the earliest moved cohort's week
                SELECT DISTINCT w.address, {week("w.day")} AS wk FROM {wallet_day} w
                WHERE w.day >= CAST($since AS DATE) AND w.address IN (SELECT address FROM members)
            )
            SELECT m.cohort, ww.wk, count(*)
            FROM ww JOIN members m ON m.address = ww.address
            WHERE ww.wk NOT IN (SELECT wk FROM act_weeks)
            GROUP BY ALL""",
        {"since": moved_cohort[0]},
    )
    conn.execute("DROP TABLE IF EXISTS temp.act_weeks")


def _move_cohort_cells(conn: duckdb.DuckDBPyConnection, target: str, changes: str, rows: str) -> None:
    """A wallet whose first week moved from c to c' leaves cell (c, w) and joins (c', w) for each week w it is
    active in; the weeks of `act_weeks` (recounted whole) aside, its active weeks did not change, so the cells move
    by one per wallet: no cohort is recounted and only the moved wallets' rows are read (`rows`)."""
    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE act_delta AS
            WITH mv AS (
                SELECT address, {week("old_first")} AS old_c, {week("new_first")} AS new_c FROM {changes}
                WHERE old_first IS NOT NULL AND {week("old_first")} IS DISTINCT FROM {week("new_first")}
            ),
            ww AS (
                SELECT DISTINCT r.address, {week("r.day")} AS wk FROM {rows} r
                WHERE r.address IN (SELECT address FROM mv) AND {week("r.day")} NOT IN (SELECT wk FROM act_weeks)
            )
            SELECT cohort, wk, sum(d) AS d FROM (
                SELECT mv.old_c AS cohort, ww.wk, -1 AS d FROM ww JOIN mv USING (address)
                UNION ALL
                SELECT mv.new_c, ww.wk, 1 FROM ww JOIN mv USING (address) WHERE mv.new_c IS NOT NULL
            ) GROUP BY ALL HAVING sum(d) <> 0"""
    )
    conn.execute(
        f"""UPDATE {target} t SET active = t.active + d.d FROM act_delta d
            WHERE t.cohort = d.cohort AND t.wk = d.wk"""
    )
    conn.execute(
        f"""INSERT INTO {target} SELECT cohort, wk, d FROM act_delta d
            WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE t.cohort = d.cohort AND t.wk = d.wk)"""
    )
    conn.execute(f"DELETE FROM {target} WHERE active = 0")  # a cell its last wallet left: no row, as from scratch
    conn.execute("DROP TABLE temp.act_delta")


def stored_range(conn: duckdb.DuckDBPyConnection, record: str) -> tuple[dt.date | None, dt.date | None]:
    row = conn.execute(f"SELECT min(day), max(day) FROM {record} WHERE rows > 0").fetchone()
    return (row[0], row[1]) if row else (None, None)


def maintain(
    conn: duckdb.DuckDBPyConnection,
    wallet_day: str,
    first_seen: str,
    record: str,
    days: str,
    cohorts: str,
    moved: tuple[str, str] | None = None,
) -> None:
    """Bring the three tables up to date after a refresh changed the wallet-days of the temp table `days` and
    moved the first weeks listed in the temp table `cohorts` (recounted whole) or the wallets of `moved`
    (derive_cohorts). Inside the caller's transaction."""
    ensure_activity_tables(conn)
    changed = [r[0] for r in conn.execute(f"SELECT DISTINCT day FROM {days}").fetchall()]
    for lo, hi in day_ranges(changed):
        derive_daily(conn, wallet_day, DAILY, lo, hi)
    # Days that entered or left the stored range since the last refresh change their periods' clip too.
    new_lo, new_hi = stored_range(conn, record)
    old = conn.execute(f"SELECT lo, hi FROM {BOUNDS}").fetchone()
    conn.execute(f"CREATE OR REPLACE TEMP TABLE act_days AS SELECT DISTINCT day FROM {days}")
    if old is not None and old[0] is not None and new_lo is not None and new_hi is not None:
        lo_a, lo_b = sorted([old[0], new_lo])
        hi_a, hi_b = sorted([old[1], new_hi])
        conn.execute(
            """INSERT INTO act_days
               SELECT CAST(range AS DATE) FROM range(CAST(CAST($a AS DATE) AS TIMESTAMP),
                                                     CAST(CAST($b AS DATE) AS TIMESTAMP), INTERVAL 1 DAY)
               UNION ALL
               SELECT CAST(range AS DATE) + 1 FROM range(CAST(CAST($c AS DATE) AS TIMESTAMP),
                                                         CAST(CAST($d AS DATE) AS TIMESTAMP), INTERVAL 1 DAY)""",
            {"a": lo_a, "b": lo_b, "c": hi_a, "d": hi_b},
        )
    derive_periods(conn, wallet_day, PERIODS, "act_days", (new_lo, new_hi))
    conn.execute(f"DELETE FROM {BOUNDS}")
    conn.execute(f"INSERT INTO {BOUNDS} VALUES (?, ?)", [new_lo, new_hi])
    derive_cohorts(conn, wallet_day, first_seen, COHORTS, days, cohorts, moved)
    conn.execute("DROP TABLE IF EXISTS temp.act_days")


def derive_all(
    conn: duckdb.DuckDBPyConnection,
    wallet_day: str,
    first_seen: str,
    names: dict[str, str],
    clip: tuple[dt.date | None, dt.date | None],
) -> None:
    """The three tables from scratch into the (temp) tables `names` (keys daily, periods, cohorts), over every
    wallet-day of `wallet_day`: the reference the incremental tables must equal."""
    for sql in create_sql("CREATE OR REPLACE TEMP TABLE", names):
        conn.execute(sql)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE all_days AS SELECT DISTINCT day FROM {wallet_day}")
    conn.execute("CREATE OR REPLACE TEMP TABLE no_cohorts (cohort DATE)")
    bounds = conn.execute("SELECT min(day), max(day) FROM all_days").fetchone()
    if bounds is not None and bounds[0] is not None:
        derive_daily(conn, wallet_day, names["daily"], bounds[0], bounds[1])
    derive_periods(conn, wallet_day, names["periods"], "all_days", clip)
    derive_cohorts(conn, wallet_day, first_seen, names["cohorts"], "all_days", "no_cohorts")
    for name in ("all_days", "no_cohorts"):
        conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
