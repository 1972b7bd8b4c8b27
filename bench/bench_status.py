"""Benchmark `stx-pipeline status` (cold processes) on a 1,000,000-row database, against import costs.

    .venv/bin/python bench/bench_status.py               # 1M rows, 7 runs of each command
    .venv/bin/python bench/bench_status.py --rows 5000000 --reps 5

Every command is a fresh process (what a user or a cron job pays). The database is one simulator day at
50,000 tx/day written by the ingestion code (records_to_table + replace_day), copied under new tx_ids to
the days before it, ending yesterday. The webserver is absent throughout (STX_UI_URL points at a closed
port). Three status modes:
  - `--no-instance`: DuckDB only;
  - default, no instance folder (DAGSTER_HOME unset, no dagster.yaml in the working directory): DuckDB,
    then a refused connection to the webserver, then nothing more;
  - default, an instance folder exists (DAGSTER_HOME/.dagster/storage): the fallback imports dagster and
    reads partition statuses from the instance's SQLite storage.
Prints figures only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, VENV_BIN, fill_database, median, print_machine, run_timed


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # released on close: nothing listens there


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print_machine()
    work = Path(tempfile.mkdtemp(prefix="stx-bench-status-"))
    try:
        yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        db = work / "data" / "wallet_metrics.duckdb"
        info = fill_database(db, args.rows, last_day=yesterday)
        print(
            f"database: {info['rows']:,} rows, {info['days']} days {info['first_day']} .. {info['last_day']}, "
            f"{info['bytes'] / 1e6:.0f} MB, filled in {info['seconds']} s",
            flush=True,
        )
        cwd = work / "cwd"  # no dagster.yaml here
        cwd.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
        env.update(
            {
                "STX_DUCKDB_PATH": str(db),
                "STX_UI_URL": f"http://127.0.0.1:{closed_port()}",
                "STX_API_URL": "http://127.0.0.1:9",
            }
        )
        from stx_pipeline.operations.background import make_dagster_home

        home = make_dagster_home(work / "dagster_home")
        # Create the instance's storage as a first run would.
        rc = run_timed(
            [
                PYTHON,
                "-c",
                f"import dagster as dg; i = dg.DagsterInstance.from_config({str(home)!r}); i.get_runs(limit=1)",
            ],
            env=env,
        )[1]
        assert rc == 0 and (home / ".dagster" / "storage").exists(), "instance storage not created"
        env_instance = {**env, "DAGSTER_HOME": str(home)}

        stx = str(VENV_BIN / "stx-pipeline")
        target = str(info["days"])
        cases = [
            ("python -c pass (interpreter start)", [PYTHON, "-c", "pass"], env),
            ("python -c 'import stx_pipeline.cli'", [PYTHON, "-c", "import stx_pipeline.cli"], env),
            ("python -c 'import duckdb'", [PYTHON, "-c", "import duckdb"], env),
            (
                "python -c 'import stx_pipeline.operations.status' (duckdb, requests, tenacity)",
                [PYTHON, "-c", "import stx_pipeline.operations.status"],
                env,
            ),
            ("python -c 'import dagster'", [PYTHON, "-c", "import dagster"], env),
            (
                f"stx-pipeline status --no-instance --target-days {target}",
                [stx, "status", "--no-instance", "--target-days", target],
                env,
            ),
            ("stx-pipeline status --no-instance (180 days)", [stx, "status", "--no-instance"], env),
            ("stx-pipeline status --no-instance --json", [stx, "status", "--no-instance", "--json"], env),
            ("stx-pipeline status, no webserver, no instance folder", [stx, "status"], env),
            ("stx-pipeline status, no webserver, instance folder exists", [stx, "status"], env_instance),
        ]
        print(f"\nmedian of {args.reps} cold runs each (min .. max), exit code:")
        for label, cmd, case_env in cases:
            walls, codes = [], set()
            output = ""
            run_timed(cmd, env=case_env, cwd=cwd)  # one warm-up: page cache, .pyc files
            for _ in range(args.reps):
                wall, rc, output = run_timed(cmd, env=case_env, cwd=cwd)
                walls.append(wall)
                codes.add(rc)
            print(
                f"  {label:<75} {median(walls):6.3f} s  ({min(walls):.3f} .. {max(walls):.3f})  exit {sorted(codes)}",
                flush=True,
            )
            if "status" in cmd and "--json" not in cmd and label.endswith("exists"):
                print("    " + "\n    ".join(output.strip().splitlines()[-8:]))
    finally:
        if args.keep:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
