"""The value page's cost at N rows over D days (issue 14): its aggregates and its metrics.

    .venv/bin/python bench/bench_value.py --rows 2000000 --rows 10000000      # over 2,150 days

Rows come from bench_dashboard.py's DuckDB SQL generator (~4% sponsored, transfers between a growing population).
Each step runs in a fresh child process, so its peak RSS (VmHWM) is its own; `value_hook_s` is the time spent in
`refresh_value_partitions` (the value aggregates' share of a refresh):

  1. scratch   `refresh_stale` from nothing: every day's aggregates, the value ones included (365-day chunks)
  2. newday    the newest day, held back from step 1, written (`replace_day`) then `refresh_stale`: a daily top-up
  3. recent    the day before the newest re-fetched with changed content (the sensor's late re-fetch), then
               `refresh_stale`
  4. topup     an old day (day 100) re-fetched with changed content (`replace_day`), then `refresh_stale`
  5. page      `compute_value` at the last stored day, and at a day 30 days earlier (recomputed per-wallet rows)
  6. upgrade   the value tables dropped and rebuilt for every built partition in one transaction (what a database
               whose aggregates predate them gets on its next refresh)

and the rows of each value table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from bench_dashboard import generate
from bench_history import START, _peak_mib


def step(name: str, db: str) -> dict[str, float]:
    from stx_pipeline.dashboard.value import compute_value
    from stx_pipeline.storage import aggregates, replace_day
    from stx_pipeline.storage.aggregates import refresh_stale
    from stx_pipeline.storage.ingest_record import ensure_record
    from stx_pipeline.storage.value_aggregates import (
        VALUE_DAY,
        VALUE_WALLET_DAY,
        WALLET_VALUE,
        WALLET_VALUE_SELECT,
        refresh_value_partitions,
    )

    result: dict[str, float] = {"value_hook_s": 0.0}
    hook = aggregates.refresh_value_partitions

    def timed(conn: duckdb.DuckDBPyConnection, days: list[dt.date]) -> None:
        s = time.perf_counter()
        hook(conn, days)
        result["value_hook_s"] += time.perf_counter() - s

    aggregates.refresh_value_partitions = timed  # the value part of each refresh_stale, measured apart
    t0 = time.perf_counter()
    with duckdb.connect(db) as conn:
        if name == "scratch":
            # The newest day is held back for `newday`: a top-up of a day never stored.
            conn.execute(
                "CREATE TABLE held_day AS SELECT * FROM stx_transactions "
                "WHERE partition_date = (SELECT max(partition_date) FROM stx_transactions)"
            )
            conn.execute(
                "DELETE FROM stx_transactions WHERE partition_date = (SELECT max(partition_date) FROM held_day)"
            )
            conn.execute("BEGIN")
            ensure_record(conn)  # the raw table only, as bench_history: the record first (not measured here)
            conn.execute("COMMIT")
            t0 = time.perf_counter()
            refresh_stale(conn)
            for table in (VALUE_WALLET_DAY, VALUE_DAY, WALLET_VALUE):
                result[f"{table}_rows"] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            # The incremental build equals the from-scratch SELECT (1 = yes): a check at a size tests do not reach.
            scratch = WALLET_VALUE_SELECT.format(source=VALUE_WALLET_DAY, days="")
            diff = conn.execute(
                f"SELECT count(*) FROM (({scratch}) EXCEPT ALL SELECT * FROM {WALLET_VALUE}) "
                f"UNION ALL SELECT count(*) FROM (SELECT * FROM {WALLET_VALUE} EXCEPT ALL ({scratch}))"
            ).fetchall()
            result["wallet_value_equals_scratch"] = float(all(n == 0 for (n,) in diff))
        elif name == "newday":
            day = conn.execute("SELECT max(partition_date) FROM held_day").fetchone()[0]
            table = conn.execute("SELECT * FROM held_day").to_arrow_table()
            conn.execute("SET threads = 1")  # as ingest.write_connection
            replace_day(conn, day, table)
            conn.execute("RESET threads")
            t0 = time.perf_counter()
            refresh_stale(conn)
            result["rows"] = len(table)
        elif name == "upgrade":
            for table in (VALUE_WALLET_DAY, VALUE_DAY, WALLET_VALUE):
                conn.execute(f"DROP TABLE {table}")
            t0 = time.perf_counter()
            conn.execute("BEGIN")
            refresh_value_partitions(conn, [])
            conn.execute("COMMIT")
        elif name in ("topup", "recent"):
            conn.execute("SET threads = 1")  # as ingest.write_connection
            which = "min(partition_date) + 100" if name == "topup" else "max(partition_date) - 1"
            day = conn.execute(f"SELECT {which} FROM stx_transactions").fetchone()[0]
            table = conn.execute(
                "SELECT * REPLACE (fee_ustx + 1 AS fee_ustx) FROM stx_transactions WHERE partition_date = ?", [day]
            ).to_arrow_table()
            replace_day(conn, day, table)
            conn.execute("RESET threads")
            t0 = time.perf_counter()
            refresh_stale(conn)
            result["rows"] = len(table)
        elif name == "page":
            v = compute_value(conn)
            result["compute_value_s"] = time.perf_counter() - t0
            s = time.perf_counter()
            assert v.as_of is not None
            compute_value(conn, as_of=v.as_of - dt.timedelta(days=30))
            result["compute_value_earlier_as_of_s"] = time.perf_counter() - s
            result["wallets"] = v.wallets
    result["seconds"] = time.perf_counter() - t0
    result["peak_rss_mib"] = _peak_mib()
    return result


def child(name: str, db: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--step", name, str(db)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(rows: int, days: int) -> None:
    with tempfile.TemporaryDirectory(prefix="stx-value-") as tmp:
        db = Path(tmp) / "v.duckdb"
        gen_s = generate(db, rows, days, START)
        print(f"rows={rows:,} days={days}: generated in {gen_s:.0f}s", flush=True)
        for name in ("scratch", "newday", "recent", "topup", "page", "upgrade"):
            r = child(name, db)
            print(f"  {name:8} " + "  ".join(f"{k}={v:,.3f}" for k, v in r.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows to generate (repeatable)")
    parser.add_argument("--days", type=int, default=2150)
    parser.add_argument("--step", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(*args.step)))
        return
    for rows in args.rows or [2_000_000]:
        run(rows, args.days)


if __name__ == "__main__":
    main()
