"""The same backfill on both storage backends: the DuckDB file (one writer at a time) and DuckLake on PostgreSQL.

Each "run" is `dg.materialize(stx_transactions)` over a range of days in its own spawned process, as a
backfill run would be (BackfillPolicy.multi_run, STX_DAYS_PER_RUN days each), fetching from the simulator over
HTTP with a per-request latency (the real API answers in ~100-300 ms). Then `status` and the dashboard rebuild
read the result. A throw-away PostgreSQL server holds the lake's catalog.

    .venv/bin/python bench/bench_backends.py [--days 30] [--txs-per-day 2000] [--latency-ms 100] [--runs 8]

Scenarios: duckdb with runs one at a time (the `hiro_api` pool limit 1), ducklake the same way, and ducklake
with `--runs` concurrent runs (pool limit 8).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# The project root and bench/ (common.py) on the path, as the other benchmarks.
sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from common import print_machine  # noqa: E402

from stx_pipeline.days import ASSET_NAME, RANGE_END_TAG, RANGE_START_TAG, last_complete_day  # noqa: E402
from stx_pipeline.devtools.postgres import running_postgres  # noqa: E402
from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain  # noqa: E402


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def run_range(first: str, last: str, env: dict[str, str]) -> tuple[bool, int, float]:
    """One backfill run in this (fresh) process: (success, write-conflict retries, seconds)."""
    os.environ.update(env)  # the settings the definitions and the storage are built from
    import dagster as dg

    from stx_pipeline.definitions import defs
    from stx_pipeline.resources import HiroApiResource, StorageResource
    from stx_pipeline.settings import Settings

    stx_transactions = defs().get_assets_def(ASSET_NAME)  # as the code location builds it

    retries = _Count()
    store_log = logging.getLogger("stx_pipeline.storage.duckdb_store")
    store_log.setLevel(logging.INFO)
    store_log.addHandler(retries)
    started = time.monotonic()
    result = dg.materialize(
        [stx_transactions],
        resources={
            "hiro": HiroApiResource(base_url=env["STX_API_URL"], requests_per_minute=0),
            "storage": StorageResource.from_settings(Settings.from_env()),  # STX_STORAGE: the file or the lake
        },
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
        raise_on_error=False,
    )
    return result.success, retries.count, time.monotonic() - started


def backfill(days: list[dt.date], env: dict[str, str], concurrent: int, per_run: int) -> dict[str, float]:
    ranges = [days[i : i + per_run] for i in range(0, len(days), per_run)]
    args = ([r[0].isoformat() for r in ranges], [r[-1].isoformat() for r in ranges], [env] * len(ranges))
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=concurrent, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(run_range, *args))
    wall = time.monotonic() - started
    if not all(ok for ok, _, _ in outcomes):
        raise SystemExit(f"a run failed: {outcomes}")
    return {"wall_s": wall, "runs": len(ranges), "conflict_retries": sum(r for _, r, _ in outcomes)}


def readers(env: dict[str, str], days: int, public: Path) -> dict[str, float]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from stx_pipeline.dashboard import build_dashboard_from_path
        from stx_pipeline.operations.status import build_report

        started = time.monotonic()
        report = build_report(env["STX_DUCKDB_PATH"], days, with_instance=False)
        status_s = time.monotonic() - started
        assert report.days_covered == days and report.error is None, report
        started = time.monotonic()
        build_dashboard_from_path(env["STX_DUCKDB_PATH"], public)
        dashboard_s = time.monotonic() - started
        return {"rows": report.total_transactions, "status_s": status_s, "dashboard_s": dashboard_s}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--txs-per-day", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=8, help="concurrent runs for the ducklake scenario")
    parser.add_argument("--days-per-run", type=int, default=0, help="default: days spread over --runs runs")
    args = parser.parse_args()
    print_machine()
    per_run = args.days_per_run or -(-args.days // args.runs)
    days = [last_complete_day() - dt.timedelta(days=i) for i in range(args.days - 1, -1, -1)]
    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=args.txs_per_day))
    print(
        f"{args.days} days x ~{args.txs_per_day} tx/day, simulator latency {args.latency_ms:.0f} ms/request, "
        f"{per_run} days per run"
    )
    rows = []
    with (
        SimulatorServer(chain, FaultConfig(latency_ms=args.latency_ms)) as sim,
        running_postgres() as pg,
        tempfile.TemporaryDirectory(prefix="stx-bench-backends-") as tmp,
    ):
        base = {
            "STX_API_URL": sim.url,
            "STX_REQUESTS_PER_MINUTE": "0",
            "STX_START_DATE": (days[0] - dt.timedelta(days=5)).isoformat(),
            "STX_DUCKDB_PATH": f"{tmp}/file/wallet.duckdb",
        }
        scenarios = [("duckdb", 1), ("ducklake", 1), ("ducklake", args.runs)]
        for i, (kind, concurrent) in enumerate(scenarios):
            env = {**base, "STX_STORAGE": kind}
            if kind == "ducklake":
                env["STX_DUCKLAKE_CATALOG"] = f"postgres:{pg.create_database(f'lake{i}')}"
                env["STX_DUCKLAKE_DATA_PATH"] = f"{tmp}/lake{i}"
            result = backfill(days, env, concurrent, per_run)
            result.update(readers(env, args.days, Path(tmp) / f"public{i}"))
            rows.append((kind, concurrent, result))
            print(f"  {kind:8} {concurrent} at a time: {result}", flush=True)
    print("\n| Backend | Runs at once | Runs | Rows | Backfill wall | Conflict retries | status | dashboard |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, concurrent, r in rows:
        print(
            f"| {kind} | {concurrent} | {r['runs']:.0f} | {r['rows']:,.0f} | {r['wall_s']:.1f} s | "
            f"{r['conflict_retries']:.0f} | {r['status_s']:.2f} s | {r['dashboard_s']:.2f} s |"
        )


if __name__ == "__main__":
    main()
