"""Benchmark a backfill: against the rate-limit floor, Dagster's share per run, and a peer (dlt rest_api).

    .venv/bin/python bench/bench_backfill.py floor   # 1. 30 days at 600/min + 50 ms latency: wall / floor
    .venv/bin/python bench/bench_backfill.py share   # 2. 90 days, no limit: daemon at STX_DAYS_PER_RUN=1,5,15,30
                                                     #    vs the same fetch-and-write in one plain process
    .venv/bin/python bench/bench_backfill.py peer    # 3. ours and dlt's rest_api, same 30 days, same limit
                                                     #    (needs the bench group: `uv sync --group bench`)
    .venv/bin/python bench/bench_backfill.py events  # 4. the instance's SQLite cost per event: Dagster's
                                                     #    storage vs stx_pipeline/instance_storage.py

floor = total pages / allowed rate: the least time any client can take under the limit. Every measured path
gets a fresh simulator (an empty rate window) and a fresh DuckDB file. Prints figures only; nothing asserts a
time (the machine is shared and noisy: compare ratios measured in one run). `--json FILE` writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from common import PROJECT_ROOT, print_machine

FIRST_DAY = dt.date(2025, 3, 1)  # any complete past day; the simulator's chain starts 2021-01-14
PAGE_LIMIT = 50
LIST_PARAMS = {"sort_by": "burn_block_time", "order": "asc", "limit": PAGE_LIMIT, "exclude_function_args": "true"}


def days_from(first: dt.date, n: int) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range(n)]


@contextlib.contextmanager
def simulator(txs_per_day: int, days: list[dt.date], rpm_limit: int | None, latency_ms: float) -> Iterator[Any]:
    """A fresh simulator (empty rate window) whose days are generated before the clock starts: the real API
    does not synthesise rows, so generation time must not count as API latency."""
    from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain

    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=txs_per_day))
    for day in days:
        chain.day_transactions(day)
    sim = SimulatorServer(chain, FaultConfig(latency_ms=latency_ms), rpm_limit=rpm_limit).start()
    try:
        yield sim
    finally:
        sim.stop()


def expected_pages(txs_per_day: int, days: list[dt.date]) -> tuple[int, int]:
    """(rows, pages) the simulator will serve for these days."""
    from stx_pipeline.simulator import ChainConfig, SyntheticChain

    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=txs_per_day))
    rows = pages = 0
    for day in days:
        n = len(chain.day_transactions(day))
        rows += n
        pages += max(1, math.ceil(n / PAGE_LIMIT))
    return rows, pages


# -- request timeline: when each request left the pacer, from which thread ------------------------------


class Timeline:
    """Patches RequestPacer.wait (in this process) to record each request's start and thread name."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._original = None

    def __enter__(self) -> Timeline:
        from stx_pipeline.hiro.pacing import RequestPacer

        self._original = RequestPacer.wait
        original = self._original
        timeline = self

        def wait(pacer: RequestPacer) -> None:
            original(pacer)
            with timeline._lock:
                timeline.starts.append((time.monotonic(), threading.current_thread().name))

        RequestPacer.wait = wait  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from stx_pipeline.hiro.pacing import RequestPacer

        RequestPacer.wait = self._original  # type: ignore[method-assign]

    def lost_time(self, interval_s: float, started: float, ended: float) -> dict[str, float]:
        """Seconds beyond the pacing interval between consecutive starts: before the first request (run
        start-up), between requests, after the last one. Days overlap (a day is listed while the previous one
        drains and is written), so a gap can no longer be put down to one day's boundary."""
        lost = {"before_first_request": 0.0, "between_requests": 0.0, "gaps_over_1s": 0.0}
        starts = sorted(self.starts)
        if not starts:
            return lost
        lost["before_first_request"] = starts[0][0] - started
        for (t0, _), (t1, _) in itertools.pairwise(starts):
            extra = max(0.0, (t1 - t0) - interval_s)
            lost["between_requests"] += extra
            if t1 - t0 > 1.0:
                lost["gaps_over_1s"] += extra  # run boundaries (Dagster's run set-up and checks)
        lost["after_last_request"] = ended - starts[-1][0] - interval_s
        return {k: round(v, 2) for k, v in lost.items()}


# -- our paths -------------------------------------------------------------------------------------------


def plain_loop(url: str, days: list[dt.date], db: Path, rpm: float | None, page_workers: int = 4) -> dict[str, Any]:
    """The asset's fetch-and-write with no Dagster: `ingest.ingest_days` (DayFetcher listing a day ahead,
    records_to_table, replace_day on a short connection per day), as the asset calls it."""
    import logging

    from stx_pipeline.hiro import HiroClient
    from stx_pipeline.hiro.strategy import DayFetcher
    from stx_pipeline.ingest import ingest_days
    from stx_pipeline.storage.backend import DuckDBFileStorage

    started = time.monotonic()
    with HiroClient(url, requests_per_minute=rpm or 0, pool_size=max(4, page_workers * 2)) as client:
        fetcher = DayFetcher(client, "auto", page_workers=page_workers)
        result = ingest_days(days, client, fetcher, DuckDBFileStorage(str(db)), logging.getLogger("bench"))
    wall = time.monotonic() - started
    if result.failures:
        raise SystemExit(result.failure_summary())
    per_day = result.per_day
    return {
        "wall_s": round(wall, 2),
        "rows": result.rows,
        "pages": sum(d["pages"] for d in per_day),
        "requests": result.stats["requests"],
        "http_429_received": result.stats["rate_limited"],
        "fetch_s": round(sum(d["fetch_s"] for d in per_day), 2),  # overlapping: can exceed the wall
        "write_s": round(sum(d["write_s"] for d in per_day), 2),
        "started": started,
        "ended": started + wall,
    }


def set_pipeline_env(work: Path, url: str, rpm: float | None, days_per_run: int) -> None:
    os.environ.update(
        {
            "STX_API_URL": url,
            "STX_DUCKDB_PATH": str(work / "data" / "stx.duckdb"),
            "STX_PUBLIC_DIR": str(work / "public"),
            "STX_REQUESTS_PER_MINUTE": str(rpm or 0),
            "STX_DAYS_PER_RUN": str(days_per_run),
            "STX_DAILY_TOPUP": "off",
            "STX_API_STRATEGY": "auto",
        }
    )


def dagster_in_process(work: Path, url: str, days: list[dt.date], rpm: float | None, days_per_run: int) -> dict:
    """The range in batches of `days_per_run` as `stx-pipeline backfill --in-process` runs it
    (operations/backfill.py `run_in_process`: the code location's job resolved once, `execute_in_process` per
    batch with the range tags the daemon's multi-run policy sets, the runs sharing one listing of all days:
    hiro/backfill_listing.py), recorded in a temporary instance from the project's dagster.yaml."""
    from stx_pipeline.devtools.dagster_env import make_dagster_home

    home = make_dagster_home(work)
    os.environ["DAGSTER_HOME"] = str(home)
    set_pipeline_env(work, url, rpm, days_per_run)
    (work / "data").mkdir(parents=True, exist_ok=True)
    import dagster as dg

    from stx_pipeline.assets.transactions import ASSET_KEY
    from stx_pipeline.days import range_tags
    from stx_pipeline.definitions import build_definitions
    from stx_pipeline.operations.backfill import shared_listing
    from stx_pipeline.settings import Settings

    batches = [days[i : i + days_per_run] for i in range(0, len(days), days_per_run)]
    per_run: list[dict[str, Any]] = []
    with dg.DagsterInstance.get() as instance:
        settings = Settings.from_env()
        defs = build_definitions(settings)
        job = defs.resolve_implicit_global_asset_job_def()
        # The clock starts with the instance open and the job built: the process's start-up, paid once by a
        # `backfill --in-process` and by the daemon before any run (a run worker's start-up: see `share`).
        started = time.monotonic()
        # As run_in_process: the runs share one client and one listing (the next run's first day listed as one
        # ends, the first day from now on).
        with shared_listing(defs, [(b[0], b[-1]) for b in batches], settings):
            for batch in batches:
                t0 = time.monotonic()
                result = job.execute_in_process(
                    instance=instance,
                    asset_selection=[ASSET_KEY],
                    tags={**range_tags(batch[0], batch[-1]), "stx-pipeline/launched-by": "bench"},
                    raise_on_error=False,
                )
                run_s = time.monotonic() - t0
                if not result.success:
                    raise SystemExit(f"run {batch[0]}..{batch[-1]} failed")
                meta = result.get_asset_materialization_events()[0].materialization.metadata
                per_run.append(
                    {
                        "days": len(batch),
                        "run_s": round(run_s, 2),
                        "asset_s": float(meta["seconds"].value),  # type: ignore[arg-type]
                        "rows": int(meta["dagster/row_count"].value),  # type: ignore[arg-type]
                        "pages": int(meta["pages"].value),  # type: ignore[arg-type]
                        "requests": int(meta["requests"].value),  # type: ignore[arg-type]
                        "http_429_received": int(meta["http_429_received"].value),  # type: ignore[arg-type]
                        "write_s": round(sum(d["write_s"] for d in meta["per_day"].value), 2),  # type: ignore[union-attr]
                    }
                )
    wall = time.monotonic() - started
    return {
        "wall_s": round(wall, 2),
        "runs": len(per_run),
        "rows": sum(r["rows"] for r in per_run),
        "pages": sum(r["pages"] for r in per_run),
        "requests": sum(r["requests"] for r in per_run),
        "http_429_received": sum(r["http_429_received"] for r in per_run),
        "write_s": round(sum(r["write_s"] for r in per_run), 2),
        "dagster_outside_asset_s": round(sum(r["run_s"] - r["asset_s"] for r in per_run), 2),
        "per_run": per_run,
        "started": started,
        "ended": started + wall,
    }


# -- 1. the floor ----------------------------------------------------------------------------------------


def bench_floor(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    days = days_from(FIRST_DAY, args.days)
    rows, pages = expected_pages(args.txs_per_day, days)
    floor_s = pages / args.sim_rpm * 60
    print(
        f"\n== 1. Backfill vs the rate-limit floor: {args.days} days x ~{args.txs_per_day} tx/day = {rows:,} rows, "
        f"{pages} pages; simulator {args.sim_rpm}/min + {args.latency_ms:g} ms per request; "
        f"floor {floor_s:.1f} s ==",
        flush=True,
    )
    out: dict[str, Any] = {"rows": rows, "pages": pages, "floor_s": round(floor_s, 2), "runs": []}
    for rpm in args.client_rpm:
        for path in args.paths:
            with simulator(args.txs_per_day, days, args.sim_rpm, args.latency_ms) as sim, Timeline() as timeline:
                sub = work / f"floor-{path}-{rpm:g}"
                sub.mkdir(parents=True, exist_ok=True)
                if path == "plain":
                    result = plain_loop(sim.url, days, sub / "stx.duckdb", rpm)
                else:
                    result = dagster_in_process(sub, sim.url, days, rpm, args.days_per_run)
                server = sim.stats()
            result["lost_s"] = timeline.lost_time(60.0 / rpm, result.pop("started"), result.pop("ended"))
            result.update(
                path=path if path == "plain" else f"dagster in-process, {args.days_per_run} days/run",
                client_rpm=rpm,
                sim_requests=server["requests"],
                sim_sent_429=server["sent_429"],
                ratio=round(result["wall_s"] / floor_s, 3),
            )
            out["runs"].append(result)
            print(
                f"{result['path']:<34} client {rpm:g}/min: wall {result['wall_s']:6.1f} s  "
                f"wall/floor {result['ratio']:.3f}  requests {result['requests']}  "
                f"429 received {result['http_429_received']} (simulator sent {server['sent_429']})  "
                f"rows {result['rows']:,}  write {result['write_s']} s",
                flush=True,
            )
            print(f"    time lost beyond the pacing interval: {result['lost_s']}", flush=True)
            if "per_run" in result:
                print(
                    f"    Dagster outside the asset body: {result['dagster_outside_asset_s']} s over "
                    f"{result['runs']} runs; per run: {[r['run_s'] for r in result['per_run']]}",
                    flush=True,
                )
    return out


# -- 2. Dagster's share ----------------------------------------------------------------------------------

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status creationTime startTime endTime
      stepStats { stepKey startTime endTime }
      tags { key value } } }
  }
}
"""


def bench_share(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from stx_pipeline.days import ASSET_PATH
    from stx_pipeline.devtools.dagster_env import dagster_dev, pipeline_env
    from stx_pipeline.operations.webserver import DagsterWebserver

    days = days_from(FIRST_DAY, args.days)
    rows, pages = expected_pages(args.txs_per_day, days)
    print(
        f"\n== 2. Dagster's share: {args.days} days x ~{args.txs_per_day} tx/day = {rows:,} rows, {pages} pages, "
        "no rate limit, no latency ==",
        flush=True,
    )
    out: dict[str, Any] = {"rows": rows, "pages": pages, "daemon": []}
    with simulator(args.txs_per_day, days, None, 0) as sim:
        plain = plain_loop(sim.url, days, work / "plain.duckdb", None)
    plain.pop("started"), plain.pop("ended")
    out["plain"] = plain
    per_day_plain = plain["wall_s"] / len(days)
    print(
        f"plain process: {plain['wall_s']} s ({per_day_plain:.3f} s/day: fetch {plain['fetch_s']} s, "
        f"write {plain['write_s']} s), {plain['requests']} requests",
        flush=True,
    )
    for dpr in args.days_per_run_list:
        root = work / f"daemon-{dpr}"
        with simulator(args.txs_per_day, days, None, 0) as sim:
            env = pipeline_env(root, sim.url, STX_DAYS_PER_RUN=str(dpr))
            (root / "data").mkdir(parents=True, exist_ok=True)
            up = time.monotonic()
            with dagster_dev(root, env) as url:
                startup_s = time.monotonic() - up
                web = DagsterWebserver(url, timeout_s=30)
                launched = time.monotonic()
                backfill_id = web.launch_backfill(ASSET_PATH, [d.isoformat() for d in days], title="bench")
                launch_wall = time.time()
                while True:
                    state = web.backfill_progress(backfill_id)
                    if state.finished:
                        break
                    time.sleep(0.5)
                wall = time.monotonic() - launched
                done_wall = time.time()
                runs = web.query(RUNS_QUERY, {"filter": {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}})
                runs = runs["runsOrError"]["results"]
                server = sim.stats()
        runs.sort(key=lambda r: r["startTime"] or 0)
        ok = [r for r in runs if r["status"] == "SUCCESS"]
        run_s = [r["endTime"] - r["startTime"] for r in ok]
        step_s = [sum(s["endTime"] - s["startTime"] for s in r["stepStats"] if s["endTime"]) for r in ok]
        gaps = [b["startTime"] - a["endTime"] for a, b in itertools.pairwise(ok)]
        first_created = min(r["creationTime"] for r in runs)
        result = {
            "days_per_run": dpr,
            "state": state.status,
            "materialized": state.materialized,
            "failed": state.failed,
            "runs": len(runs),
            "dagster_dev_startup_s": round(startup_s, 1),
            "wall_s": round(wall, 1),
            "launch_to_first_run_created_s": round(first_created - launch_wall, 1),
            "first_run_created_to_started_s": round(ok[0]["startTime"] - first_created, 1) if ok else None,
            "runs_span_s": round(ok[-1]["endTime"] - ok[0]["startTime"], 1) if ok else None,
            "last_run_end_to_backfill_done_s": round(done_wall - ok[-1]["endTime"], 1) if ok else None,
            "sum_run_s": round(sum(run_s), 1),
            "sum_step_s": round(sum(step_s), 1),
            "mean_run_s": round(sum(run_s) / len(run_s), 2) if run_s else None,
            "mean_gap_between_runs_s": round(sum(gaps) / len(gaps), 2) if gaps else None,
            "requests": server["requests"],
            "sim_sent_429": server["sent_429"],
        }
        if ok:
            # From the first run's creation to the last run's end: dequeue, run worker start-up, the work, events.
            # What it takes beyond the plain process's time for the same days is Dagster's per-run share.
            busy = ok[-1]["endTime"] - first_created
            result["first_run_created_to_last_run_end_s"] = round(busy, 1)
            result["overhead_per_run_s"] = round((busy - plain["wall_s"]) / len(ok), 2)
            result["overhead_per_day_s"] = round((busy - plain["wall_s"]) / len(days), 3)
            result["fixed_daemon_latency_s"] = round(
                result["launch_to_first_run_created_s"] + result["last_run_end_to_backfill_done_s"], 1
            )
        out["daemon"].append(result)
        print(json.dumps(result), flush=True)
    return out


# -- 3. the peer: dlt rest_api ---------------------------------------------------------------------------


def dlt_load(url: str, days: list[dt.date], work: Path, parallelized: bool = False) -> dict[str, Any]:
    """dlt's rest_api source: one resource per day (offset paging, `total` from the body), into DuckDB.

    dlt has no client-side pacing by requests per minute: its requests helper retries 429 and 5xx (5 attempts,
    exponential backoff, honouring `Retry-After`). `parallelized` extracts the day resources concurrently."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from stx_pipeline.days import day_window

    resources = []
    for day in days:
        start, end = day_window(day)
        resources.append(
            {
                "name": f"tx_{day:%Y%m%d}",
                "table_name": "stx_transactions",
                "write_disposition": "append",
                "endpoint": {
                    "path": "extended/v1/tx",
                    "params": {**LIST_PARAMS, "start_time": start, "end_time": end - 1},
                    "data_selector": "results",
                    "paginator": {
                        "type": "offset",
                        "limit": PAGE_LIMIT,
                        "offset_param": "offset",
                        "limit_param": "limit",
                        "total_path": "total",
                    },
                },
            }
        )
    source = rest_api_source({"client": {"base_url": url + "/"}, "resources": resources}, parallelized=parallelized)
    db = work / "dlt.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name="stx_dlt_bench",
        pipelines_dir=str(work / "dlt_pipelines"),
        destination=dlt.destinations.duckdb(str(db)),
        dataset_name="stx",
    )
    started = time.monotonic()
    pipeline.run(source)
    wall = time.monotonic() - started
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM stx.stx_transactions").fetchone()[0]
        distinct = conn.execute("SELECT count(DISTINCT tx_id) FROM stx.stx_transactions").fetchone()[0]
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'stx' AND table_name NOT LIKE '_dlt%'"
        ).fetchone()[0]
    return {"wall_s": round(wall, 2), "rows": rows, "distinct_tx_ids": distinct, "tables": tables}


def bench_peer(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    try:
        import dlt
    except ImportError as exc:
        raise SystemExit(
            "dlt is not installed: `uv sync --group bench` first (then `uv sync --frozen` to go back)"
        ) from exc
    days = days_from(FIRST_DAY, args.days)
    rows, pages = expected_pages(args.txs_per_day, days)
    floor_s = pages / args.sim_rpm * 60
    rpm = args.client_rpm[0]
    print(
        f"\n== 3. Peer: dlt {dlt.__version__} rest_api vs ours, {args.days} days x ~{args.txs_per_day} tx/day = "
        f"{rows:,} rows, {pages} pages; simulator {args.sim_rpm}/min + {args.latency_ms:g} ms; "
        f"floor {floor_s:.1f} s ==",
        flush=True,
    )
    out: dict[str, Any] = {"dlt_version": dlt.__version__, "rows": rows, "pages": pages, "floor_s": floor_s}
    with simulator(args.txs_per_day, days, args.sim_rpm, args.latency_ms) as sim:
        ours = dagster_in_process(work / "peer-ours", sim.url, days, rpm, args.days_per_run)
        ours_server = sim.stats()
    ours.pop("started"), ours.pop("ended")
    out["ours"] = {**ours, "sim_requests": ours_server["requests"], "sim_sent_429": ours_server["sent_429"]}
    print(
        f"ours: wall {ours['wall_s']} s, wall/floor {ours['wall_s'] / floor_s:.3f}, "
        f"429 sent {ours_server['sent_429']}; outside the asset body {ours['dagster_outside_asset_s']} s over "
        f"{ours['runs']} runs (load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    names = [("ours (Dagster in-process)", "ours")]
    if not args.no_dlt_sequential:
        with simulator(args.txs_per_day, days, args.sim_rpm, args.latency_ms) as sim:
            theirs = dlt_load(sim.url, days, work / "peer-dlt")
            server = sim.stats()
        out["dlt"] = {**theirs, "sim_requests": server["requests"], "sim_sent_429": server["sent_429"]}
        names.append(("dlt rest_api", "dlt"))
    if args.dlt_parallelized:
        with simulator(args.txs_per_day, days, args.sim_rpm, args.latency_ms) as sim:
            theirs = dlt_load(sim.url, days, work / "peer-dlt-parallel", parallelized=True)
            server = sim.stats()
        out["dlt_parallelized"] = {**theirs, "sim_requests": server["requests"], "sim_sent_429": server["sent_429"]}
        names.append(("dlt rest_api, parallelized", "dlt_parallelized"))
    for name, r in ((label, out[key]) for label, key in names):
        print(
            f"{name:<28} wall {r['wall_s']:6.1f} s  wall/floor {r['wall_s'] / floor_s:.3f}  "
            f"requests {r['sim_requests']} (429 sent {r['sim_sent_429']})  rows {r['rows']:,}",
            flush=True,
        )
    for _, key in names[1:]:
        print(f"{key}: {out[key]}", flush=True)
    return out


# -- 4. the instance's cost per event --------------------------------------------------------------------


def bench_events(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """What storing one event costs in the instance's SQLite files: Dagster's own storage (a new engine and
    connection per statement, each close checkpointing the WAL) against the project's (stx_pipeline/
    instance_storage.py: an engine per file, a connection kept open while the file is in use, synchronous=NORMAL).
    A new run's shard after the process's first (its first event: tables, indexes, alembic stamp), then
    `--events` log lines to it."""
    import logging
    import uuid

    from dagster._core.events.log import EventLogEntry
    from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

    from stx_pipeline.instance_storage import SqliteStorage

    print(f"\n== 4. Instance cost per event: {args.events} events to a new run's shard, {args.rounds} rounds ==")
    out: dict[str, Any] = {}
    for round_ in range(args.rounds):
        for name, cls in (("dagster", DagsterSqliteStorage), ("project", SqliteStorage)):
            storage = cls.from_local(str(work / f"events-{name}-{round_}"))
            log = storage.event_log_storage
            run_id = str(uuid.uuid4())

            def entry(message: str, run_id: str = run_id) -> EventLogEntry:
                return EventLogEntry(
                    error_info=None, level=logging.INFO, user_message=message, run_id=run_id, timestamp=time.time()
                )

            log.store_event(entry("first", str(uuid.uuid4())))  # the process's first run (and the template)
            t0, c0 = time.perf_counter(), time.process_time()
            log.store_event(entry("first"))  # a later run's new shard
            shard_s, shard_cpu = time.perf_counter() - t0, time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(args.events):
                log.store_event(entry(f"2025-03-01: {i} transactions in 6 pages"))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            storage.dispose()
            row = {
                "new_shard_ms": round(shard_s * 1000, 1),
                "new_shard_cpu_ms": round(shard_cpu * 1000, 1),
                "per_event_ms": round(wall / args.events * 1000, 2),
                "per_event_cpu_ms": round(cpu / args.events * 1000, 2),
                "load_average": os.getloadavg()[0],
            }
            out.setdefault(name, []).append(row)
            print(f"{name:<8} {row}", flush=True)
    return out


# -- main ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("floor", "share", "peer", "events"))
    parser.add_argument("--days", type=int, help="days to backfill (default 30; share: 90)")
    parser.add_argument("--txs-per-day", type=int, help="simulator day size (default 1000; share: 500)")
    parser.add_argument("--sim-rpm", type=int, default=600, help="simulator limit per minute")
    parser.add_argument("--client-rpm", type=float, nargs="+", default=[600.0], help="client budget(s) per minute")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--days-per-run", type=int, default=5, help="batches of the in-process Dagster path")
    parser.add_argument("--paths", nargs="+", default=["plain", "dagster"], choices=("plain", "dagster"))
    parser.add_argument(
        "--days-per-run-list", type=int, nargs="+", default=[1, 5, 15, 30], help="share: STX_DAYS_PER_RUN values"
    )
    parser.add_argument("--dlt-parallelized", action="store_true", help="peer: also dlt with parallelized=True")
    parser.add_argument(
        "--no-dlt-sequential", action="store_true", help="peer: skip dlt's default (sequential) extraction"
    )
    parser.add_argument("--events", type=int, default=100, help="events: log lines stored per round")
    parser.add_argument("--rounds", type=int, default=3, help="events: rounds (each storage in turn)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    args.days = args.days or (90 if args.part == "share" else 30)
    args.txs_per_day = args.txs_per_day or (500 if args.part == "share" else 1000)

    print_machine()
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        parts = {"floor": bench_floor, "share": bench_share, "peer": bench_peer, "events": bench_events}
        result = parts[args.part](args, work)
    finally:
        if args.keep:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    os.chdir(PROJECT_ROOT)
    main()
