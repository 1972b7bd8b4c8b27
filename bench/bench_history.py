"""The whole chain's history: every cost at N rows over D days (issue 13).

    .venv/bin/python bench/bench_history.py                       # 50,000,000 rows over 2,150 days
    .venv/bin/python bench/bench_history.py --rows 10000000 --rows 20000000
    .venv/bin/python bench/bench_history.py --raw-db /tmp/raw50m.duckdb   # generate once, reuse on later runs

Rows come from bench_dashboard.py's DuckDB SQL generator (the raw table only, as an old database would be).
Each step runs in a fresh child process, so its peak RSS is its own:

  1. record    the ingest record made from the raw rows (the migration an old database gets on its next write)
  2. scratch   `build_dashboard_from_path` from nothing: every day's aggregates built, then the page (the
               refresh and the page are also timed apart: `refresh_s`, then `page_s` over fresh aggregates)
  3. replace   `replace_day` of one old day re-fetched with changed content (a 20,000-row day), 5 times: its rate
  4. topup     the dashboard after that re-fetch (only the stale day's aggregates rebuilt, then the page; also
               `refresh_s` and `page_s` apart)
  4b. newday  the daily top-up: the next day written (replace_day), its aggregates refreshed, the page
  4c. refetch an old day re-fetched with changed fees and the same transactions, refreshed, the page
  5. status    `build_report` with no instance, and with a DAGSTER_HOME holding an instance but no webserver
  6. checks    the run's tx_id check (5 days and their reach) vs the whole-table audit
  (page       `--step page DB OUT` only: the page over fresh aggregates, its metrics and value.html's apart)

and the DuckDB file's bytes per transaction. Steps run alone on a database (`--step NAME DB OUT`) also include:

  rebuild_split      the aggregates from nothing by storage/rebuild.py (what refresh_stale runs when nothing is
                     built), seconds per step of the build and CPU seconds
  incremental_split  the same by the incremental path's 365-day chunks (before the rebuild), on another copy
  compare            `--step compare A B`: rows of each aggregate table in one database and not the other
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from bench_dashboard import generate

START = dt.date(2021, 1, 14)  # Stacks 2.0


def _peak_mib() -> float:
    # VmHWM, not ru_maxrss: a child keeps its parent's ru_maxrss across exec (the generator's peak).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(name: str, db: str, out: str) -> dict[str, float]:
    """One measured step, run in this (child) process."""
    from stx_pipeline.dashboard import build_dashboard_from_path
    from stx_pipeline.storage import duplicate_tx_ids, replace_day
    from stx_pipeline.storage.duckdb_store import audit
    from stx_pipeline.storage.ingest_record import ensure_record

    t0 = time.perf_counter()
    result: dict[str, float] = {}
    if name == "record":
        with duckdb.connect(db) as conn:
            conn.execute("BEGIN")
            ensure_record(conn)
            conn.execute("COMMIT")
    elif name in ("scratch", "topup"):
        build_dashboard_from_path(db, out)
    elif name in ("scratch_split", "topup_split"):
        from stx_pipeline.storage.aggregates import refresh_stale

        with duckdb.connect(db) as conn:
            s = time.perf_counter()
            result["refreshed_days"] = len(refresh_stale(conn))
            result["refresh_s"] = time.perf_counter() - s
        s = time.perf_counter()
        build_dashboard_from_path(db, out)  # the aggregates are fresh: the page alone
        result["page_s"] = time.perf_counter() - s
        from stx_pipeline.dashboard import compute_all

        with duckdb.connect(db, read_only=True) as conn:
            s = time.perf_counter()
            compute_all(conn)  # the wallet metrics alone (index.html's figures), without rendering or other pages
            result["metrics_s"] = time.perf_counter() - s
    elif name == "rebuild_split":
        # The from-nothing build alone (what refresh_stale runs when no partition is built), per statement.
        from stx_pipeline.storage.rebuild import build_all

        timings: dict[str, float] = {}
        with duckdb.connect(db) as conn:  # build_all sets its own memory limit
            s, cpu = time.perf_counter(), time.process_time()
            result["refreshed_days"] = len(build_all(conn, timings))
            result["refresh_s"] = time.perf_counter() - s
            result["refresh_cpu_s"] = time.process_time() - cpu  # every thread's CPU: less sensitive to the load
        result.update({f"{k}_s": v for k, v in timings.items()})
    elif name == "incremental_split":
        # The same build by the incremental path (refresh_days' 365-day chunks before the rebuild existed): the
        # comparison, on a copy of the same database.
        from stx_pipeline.storage.aggregates import BUILD_MEMORY_LIMIT, CHUNK_DAYS, _refresh_chunk, stale_days

        with duckdb.connect(db) as conn:
            conn.execute(f"SET memory_limit = '{BUILD_MEMORY_LIMIT}'")
            days = stale_days(conn)
            s, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(days), CHUNK_DAYS):
                _refresh_chunk(conn, days[i : i + CHUNK_DAYS])
            result["refreshed_days"] = len(days)
            result["refresh_s"] = time.perf_counter() - s
            result["refresh_cpu_s"] = time.process_time() - cpu
    elif name == "compare":
        # `--step compare A B`: rows of every aggregate table in A and not in B and the reverse (EXCEPT ALL),
        # e.g. a rebuild_split copy against an incremental_split copy of the same raw file.
        from stx_pipeline.storage.activity_metrics import DAILY
        from stx_pipeline.storage.rebuild import TABLES

        with duckdb.connect() as conn:
            conn.execute(f"ATTACH '{db}' AS a (READ_ONLY)")
            conn.execute(f"ATTACH '{out}' AS b (READ_ONLY)")
            for t in TABLES:
                zero = " WHERE (active, mau) <> (0, 0)" if t == DAILY else ""  # all-zero days: written or not
                a, b = f"SELECT * FROM a.{t}{zero}", f"SELECT * FROM b.{t}{zero}"
                result[f"{t}_rows"] = conn.execute(f"SELECT count(*) FROM ({a})").fetchone()[0]
                result[f"{t}_apart"] = conn.execute(
                    f"SELECT (SELECT count(*) FROM ({a} EXCEPT ALL {b})) + (SELECT count(*) FROM ({b} EXCEPT ALL {a}))"
                ).fetchone()[0]
    elif name == "replace":
        with duckdb.connect(db) as conn:
            conn.execute("SET threads = 1")  # as ingest.write_connection
            day = conn.execute("SELECT min(partition_date) + 100 FROM stx_transactions").fetchone()[0]
            # The day's rows with changed content and 20,000 rows: fees changed, tx_ids kept.
            table = conn.execute(
                "SELECT * REPLACE (fee_ustx + 1 AS fee_ustx) FROM stx_transactions "
                "WHERE partition_date = ? LIMIT 20000",
                [day],
            ).to_arrow_table()
            times = []
            for _ in range(5):
                s = time.perf_counter()
                replace_day(conn, day, table)
                times.append(time.perf_counter() - s)
            result["replace_day_s"] = sorted(times)[2]
            result["replace_day_rows"] = len(table)
    elif name in ("newday", "refetch"):
        # newday: the daily top-up (the next day, the last day's rows one day later under new tx_ids);
        # refetch: an old day re-fetched with changed fees, same transactions (no first-seen date moves).
        from stx_pipeline.dashboard import compute_all
        from stx_pipeline.storage.aggregates import refresh_stale

        with duckdb.connect(db) as conn:
            if name == "newday":
                src = conn.execute("SELECT max(partition_date) FROM stx_transactions").fetchone()[0]
                day = src + dt.timedelta(days=1)
                select = (
                    "SELECT * REPLACE (tx_id || '-n' AS tx_id, partition_date + 1 AS partition_date, "
                    "block_time + INTERVAL 1 DAY AS block_time, burn_block_time + INTERVAL 1 DAY AS burn_block_time)"
                )
            else:
                src = day = conn.execute("SELECT min(partition_date) + 200 FROM stx_transactions").fetchone()[0]
                select = "SELECT * REPLACE (fee_ustx + 3 AS fee_ustx)"
            table = conn.execute(f"{select} FROM stx_transactions WHERE partition_date = ?", [src]).to_arrow_table()
            s = time.perf_counter()
            replace_day(conn, day, table)
            result["replace_day_s"] = time.perf_counter() - s
            result["rows"] = len(table)
            s = time.perf_counter()
            result["refreshed_days"] = len(refresh_stale(conn))
            result["refresh_s"] = time.perf_counter() - s
        s = time.perf_counter()
        build_dashboard_from_path(db, out)
        result["page_s"] = time.perf_counter() - s
        with duckdb.connect(db, read_only=True) as conn:
            s = time.perf_counter()
            compute_all(conn)
            result["metrics_s"] = time.perf_counter() - s
    elif name == "checks":
        with duckdb.connect(db, read_only=True) as conn:
            last = conn.execute("SELECT max(partition_date) FROM stx_transactions").fetchone()[0]
            s = time.perf_counter()
            duplicate_tx_ids(conn, [last - dt.timedelta(days=i) for i in range(5)])
            result["run_check_s"] = time.perf_counter() - s
            s = time.perf_counter()
            audit(conn)
            result["audit_s"] = time.perf_counter() - s
    elif name == "page":
        # The page alone over fresh aggregates (`--step page DB OUT` only): the whole build, then index.html's
        # metrics and value.html's apart; load1 is the machine's 1-minute load average before and after.
        import os

        from stx_pipeline.dashboard import build_dashboard_from_path, compute_all
        from stx_pipeline.dashboard.value import compute_value

        result["load1_before"] = os.getloadavg()[0]
        s, cpu = time.perf_counter(), time.process_time()
        build_dashboard_from_path(db, out)
        result["page_s"] = time.perf_counter() - s
        # CPU seconds of this process (every DuckDB thread): the work done, less sensitive to the machine's load.
        result["page_cpu_s"] = time.process_time() - cpu
        with duckdb.connect(db, read_only=True) as conn:
            s = time.perf_counter()
            data = compute_all(conn)
            result["metrics_s"] = time.perf_counter() - s
            s = time.perf_counter()
            compute_value(conn, as_of=data.as_of)
            result["value_s"] = time.perf_counter() - s
        result["load1_after"] = os.getloadavg()[0]
    result["seconds"] = time.perf_counter() - t0
    result["peak_rss_mib"] = _peak_mib()
    return result


def child(name: str, db: Path, out: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--step", name, str(db), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def status_seconds(db: Path, env_extra: dict[str, str], *args: str) -> float:
    """Wall time of the real command, `stx-pipeline status`, process start included (median of 3)."""
    import os

    env = {**os.environ, "STX_DUCKDB_PATH": str(db), "STX_TARGET_DAYS": "2150", **env_extra}
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "stx-pipeline"), "status", *args], env=env, capture_output=True
        )
        times.append(time.perf_counter() - t0)
    return sorted(times)[1]


def run(rows: int, days: int, raw_db: Path | None = None, split: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="stx-history-", dir=raw_db.parent if raw_db else None) as tmp:
        db, out = Path(tmp) / "h.duckdb", Path(tmp) / "site"
        if raw_db is not None and raw_db.exists():
            print(f"rows={rows:,} days={days}: raw table copied from {raw_db} (generated earlier)", flush=True)
        else:
            gen_s = generate(raw_db or db, rows, days, START)
            print(f"rows={rows:,} days={days}: generated in {gen_s:.0f}s", flush=True)
        if raw_db is not None:
            shutil.copyfile(raw_db, db)
        suffix = "_split" if split else ""
        for name in ("record", f"scratch{suffix}", "replace", f"topup{suffix}", "newday", "refetch", "checks"):
            r = child(name, db, out)
            print(f"  {name:8} " + "  ".join(f"{k}={v:,.3f}" for k, v in r.items()), flush=True)
        home = Path(tmp) / "home"
        (home / ".dagster" / "storage").mkdir(parents=True)
        closed = "http://127.0.0.1:9"  # nothing answers there
        print(f"  status --no-instance: {status_seconds(db, {}, '--no-instance'):.2f}s", flush=True)
        no_web = {"DAGSTER_HOME": str(home), "STX_UI_URL": closed}
        print(f"  status, instance on disk, no webserver: {status_seconds(db, no_web):.2f}s", flush=True)
        size = db.stat().st_size
        print(f"  DuckDB file {size / 2**30:.2f} GiB, {size / rows:.1f} bytes per transaction", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows to generate (repeatable)")
    parser.add_argument("--days", type=int, default=2150)
    parser.add_argument("--raw-db", type=Path, help="raw-only database to copy (generated into it when missing)")
    parser.add_argument(
        "--split", action="store_true", help="time the aggregates' refresh and the page apart (scratch, topup)"
    )
    parser.add_argument("--step", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(*args.step)))
        return
    for rows in args.rows or [50_000_000]:
        run(rows, args.days, args.raw_db, args.split)


if __name__ == "__main__":
    main()
