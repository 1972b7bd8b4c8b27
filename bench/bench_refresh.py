"""One incremental refresh on a copy of a built database, split per SQL statement (issue 13).

    .venv/bin/python bench/bench_refresh.py BUILT.duckdb newday            # the daily top-up
    .venv/bin/python bench/bench_refresh.py BUILT.duckdb refetch           # day 200 again: same txs, fees changed
    .venv/bin/python bench/bench_refresh.py BUILT.duckdb lose --day 100    # day 100 re-fetched with 87 % of its rows
    .venv/bin/python bench/bench_refresh.py BUILT.duckdb newday --code /tmp/old-checkout   # another version's code

BUILT is a database `bench_history.py` built (raw rows, ingest record, every aggregate); it is copied next to itself
and never written. The step writes its day (`replace_day`), then `refresh_stale` runs through a connection that
times every statement: the output is the refresh's seconds, the process's peak memory (VmHWM), the statement count
and the slowest statements. `--code` puts another checkout's `stx_pipeline` first on the path (compare two
versions in one run, alternating, on a loaded machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).parent))


class TimedConnection:
    """A DuckDB connection whose execute/executemany record (seconds, statement) in `log`."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn
        self.log: list[tuple[float, str]] = []

    def _timed(self, method: str, sql: str, *args: Any) -> Any:
        t0 = time.perf_counter()
        result = getattr(self._conn, method)(sql, *args)
        self.log.append((time.perf_counter() - t0, " ".join(str(sql).split())))
        return result

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed("execute", sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed("executemany", sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def measure(db: str, name: str, day_offset: int) -> dict[str, Any]:
    """Runs in the child process: write the step's day, then the timed refresh."""
    from bench_history import _peak_mib  # here: it imports stx_pipeline, after --code's checkout is on the path

    from stx_pipeline.storage import replace_day
    from stx_pipeline.storage.aggregates import refresh_stale

    with duckdb.connect(db) as conn:
        first, last = conn.execute("SELECT min(partition_date), max(partition_date) FROM stx_transactions").fetchone()
        limit = ""
        if name == "newday":  # the last day's rows one day later under new tx_ids (as bench_history's newday)
            src, day = last, last + dt.timedelta(days=1)
            select = (
                "SELECT * REPLACE (tx_id || '-n' AS tx_id, partition_date + 1 AS partition_date, "
                "block_time + INTERVAL 1 DAY AS block_time, burn_block_time + INTERVAL 1 DAY AS burn_block_time)"
            )
        elif name == "refetch":  # same transactions, fees changed: no first day moves
            src = day = first + dt.timedelta(days=day_offset)
            select = "SELECT * REPLACE (fee_ustx + 3 AS fee_ustx)"
        else:  # lose: 87 % of the day's rows (bench_history's 20,000 of 23,000), fees changed: first days move
            src = day = first + dt.timedelta(days=day_offset)
            n = conn.execute("SELECT count(*) FROM stx_transactions WHERE partition_date = ?", [src]).fetchone()[0]
            select, limit = "SELECT * REPLACE (fee_ustx + 1 AS fee_ustx)", f" LIMIT {int(n * 0.87)}"
        table = conn.execute(f"{select} FROM stx_transactions WHERE partition_date = ?{limit}", [src]).to_arrow_table()
        replace_day(conn, day, table)
        timed = TimedConnection(conn)
        t0 = time.perf_counter()
        refreshed = refresh_stale(timed)  # type: ignore[arg-type]  # duck-typed: only execute/executemany are used
        seconds = time.perf_counter() - t0
    top = sorted(timed.log, reverse=True)[:12]
    return {
        "step": name,
        "day": str(day),
        "rows": len(table),
        "refreshed_days": len(refreshed),
        "refresh_s": round(seconds, 3),
        "peak_rss_mib": round(_peak_mib()),
        "statements": len(timed.log),
        "slowest": [[round(s, 3), sql[:140]] for s, sql in top],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path, help="a built database (copied, never written)")
    parser.add_argument("step", choices=["newday", "refetch", "lose"])
    parser.add_argument("--day", type=int, help="days after the first stored day (refetch: 200, lose: 100)")
    parser.add_argument("--code", type=Path, help="a checkout whose stx_pipeline to measure instead of this one")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        code, offset = args.child
        if code:
            sys.path.insert(0, code)
        print(json.dumps(measure(str(args.db), args.step, int(offset))))
        return
    offset = args.day if args.day is not None else (200 if args.step == "refetch" else 100)
    copy = args.db.with_name(args.db.stem + ".bench-refresh.duckdb")
    shutil.copyfile(args.db, copy)
    try:
        done = subprocess.run(
            [sys.executable, __file__, str(copy), args.step, "--child", str(args.code or ""), str(offset)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"step {args.step} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
        print(json.dumps(json.loads(done.stdout.strip().splitlines()[-1]), indent=1))
    finally:
        for path in (copy, copy.with_name(copy.name + ".wal")):
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
