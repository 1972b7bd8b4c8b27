"""Benchmark ingestion: DuckDB write rate, one-day materialization, peak memory, pages per day.

    .venv/bin/python bench/bench_ingest.py                 # everything (a, b, c, d, d2)
    .venv/bin/python bench/bench_ingest.py write           # a. records_to_table and replace_day rows/s
    .venv/bin/python bench/bench_ingest.py materialize     # b. one 5,000-tx day (3 ways)
    .venv/bin/python bench/bench_ingest.py rss             # c. peak RSS of a run at 100,000 tx/day
    .venv/bin/python bench/bench_ingest.py rss-stages      # c2. memory by step; per-page conversion for comparison
    .venv/bin/python bench/bench_ingest.py pages           # d. pages per day and the time floor per N days
    .venv/bin/python bench/bench_ingest.py requests        # d2. real API calls per day: v1, v3, auto after a 410

Prints figures only; nothing here asserts a time (the machine is shared and noisy: compare ratios
measured in one run). Scratch files go to a temporary folder that is removed at the end (--keep to keep).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    PROJECT_ROOT,
    PYTHON,
    VENV_BIN,
    fill_database,
    median,
    print_machine,
    run_timed,
)

from stx_pipeline.days import ASSET_NAME, range_tags

DAY = dt.date(2025, 3, 1)  # any complete past day; the simulator's chain starts 2021-01-14
PAGE_LIMIT = 50
PARTS = ("write", "materialize", "rss", "rss-stages", "pages", "requests")
MARKER = "BENCH_JSON "  # the child's result line (Dagster logs to the same streams)


# -- a. write rate ---------------------------------------------------------------------------------


def bench_write(work: Path, reps: int, sizes: list[int], prefill_rows: int) -> dict[str, Any]:
    import duckdb

    from stx_pipeline.days import day_window
    from stx_pipeline.hiro import records_to_table
    from stx_pipeline.simulator import ChainConfig, SyntheticChain
    from stx_pipeline.storage import duplicate_tx_ids, replace_day

    print(f"\n== a. DuckDB write rate (replace_day), median of {reps} ==", flush=True)
    base = work / "prefilled.duckdb"
    # The prefilled days end the day before DAY - 1: the timed day is a new day for that file.
    info = fill_database(base, prefill_rows, last_day=DAY - dt.timedelta(days=2))
    print(
        f"prefilled DB: {info['rows']:,} rows over {info['days']} days ({info['bytes'] / 1e6:.0f} MB) "
        f"in {info['seconds']} s",
        flush=True,
    )
    results: dict[str, Any] = {"prefill": info, "sizes": {}}
    for n in sizes:
        gen_started = time.perf_counter()
        records = SyntheticChain(ChainConfig(seed=7, txs_per_day=n)).day_transactions(DAY)
        gen_s = time.perf_counter() - gen_started
        rows = len(records)
        parse = []
        table = None
        for _ in range(reps):
            started = time.perf_counter()
            table = records_to_table(records, DAY, window=day_window(DAY))
            parse.append(time.perf_counter() - started)
        assert table is not None
        del records

        def write_once(db: Path, fresh_copy_of: Path | None, table: Any = table) -> tuple[float, float]:
            if db.exists():
                db.unlink()
            if fresh_copy_of is not None:
                shutil.copyfile(fresh_copy_of, db)
            open_started = time.perf_counter()
            conn = duckdb.connect(str(db))
            started = time.perf_counter()
            replace_day(conn, DAY, table)
            write_s = time.perf_counter() - started
            conn.close()
            return write_s, time.perf_counter() - open_started

        cases: dict[str, dict[str, float]] = {}
        for label, source in (("empty DB", None), (f"DB with {info['rows']:,} rows", base)):
            writes, with_open = [], []
            for i in range(reps):
                w, o = write_once(work / f"w{n}_{i}.duckdb", source)
                writes.append(w)
                with_open.append(o)
            cases[label] = {"write_s": median(writes), "open_write_close_s": median(with_open)}
        # Re-fetch: replace a day that is already stored (delete its rows, insert them again).
        db = work / f"refetch{n}.duckdb"
        shutil.copyfile(base, db)
        conn = duckdb.connect(str(db))
        replace_day(conn, DAY, table)
        refetch = []
        for _ in range(reps):
            started = time.perf_counter()
            replace_day(conn, DAY, table)
            refetch.append(time.perf_counter() - started)
        check_s = []
        for _ in range(reps):
            started = time.perf_counter()
            duplicate_tx_ids(conn)
            check_s.append(time.perf_counter() - started)
        conn.close()
        for f in work.glob(f"w{n}_*.duckdb*"):
            f.unlink()
        db.unlink()
        cases[f"re-fetch of a stored day, DB with {info['rows'] + rows:,} rows"] = {
            "write_s": median(refetch),
            "open_write_close_s": float("nan"),
        }
        parse_s = median(parse)
        print(
            f"\n{rows:,} rows/day (simulator generation {gen_s:.1f} s, not timed below)\n"
            f"  records_to_table:                {parse_s:6.3f} s  {rows / parse_s:>10,.0f} rows/s",
            flush=True,
        )
        for label, c in cases.items():
            extra = (
                "" if math.isnan(c["open_write_close_s"]) else f"  (open+write+close {c['open_write_close_s']:.3f} s)"
            )
            rate = rows / c["write_s"]
            print(f"  replace_day into {label + ':':<45} {c['write_s']:6.3f} s  {rate:>10,.0f} rows/s{extra}")
        print(f"  duplicate_tx_ids check over the whole table: {median(check_s):.3f} s", flush=True)
        results["sizes"][rows] = {
            "parse_s": parse_s,
            "cases": cases,
            "duplicate_check_s": median(check_s),
        }
    return results


# -- b/c. one-day materialization ---------------------------------------------------------------------


def _vm(field: str) -> int:
    """VmRSS / VmHWM of this process in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child_materialize(url: str, db: str, day: str, n_days: int = 1) -> None:
    """Run in a fresh process: import, materialize one day (or `n_days` from `day` in one run, as a backfill's
    run does: days listed one ahead while the previous one is written), print JSON (times, metadata, memory)."""
    started = time.perf_counter()
    import dagster as dg

    from stx_pipeline.definitions import defs
    from stx_pipeline.devtools.resources import pipeline_resources

    stx_transactions = defs().get_assets_def(ASSET_NAME)  # as the code location builds it

    import_s = time.perf_counter() - started
    rss_after_import = _vm("VmRSS")
    started = time.perf_counter()
    first = dt.date.fromisoformat(day)
    result = dg.materialize(
        [stx_transactions],
        resources=pipeline_resources(url, Path(db)),
        **(
            {"partition_key": day}
            if n_days == 1
            else {"tags": range_tags(first, first + dt.timedelta(days=n_days - 1))}  # type: ignore[dict-item]
        ),
        raise_on_error=True,
    )
    run_s = time.perf_counter() - started
    meta = result.asset_materializations_for_node(ASSET_NAME)[0].metadata
    print(
        MARKER
        + json.dumps(
            {
                "import_s": import_s,
                "run_s": run_s,
                "per_day": meta["per_day"].value,
                "pages": meta["pages"].value,
                "requests": meta["requests"].value,
                "rss_after_import": rss_after_import,
                "peak_rss": _vm("VmHWM"),
            }
        )
    )


def child_stages(url: str, mode: str) -> None:
    """Fresh process: the asset's steps outside a Dagster run (dagster imported), VmRSS/VmHWM after each.

    mode "day": fetch_day (pages converted to columns as they arrive) -> replace_day, as the asset does;
    mode "per-page": the same conversion spelled out here, for comparison.
    """
    import dagster  # noqa: F401  (the same import footprint as a run)
    import duckdb
    import pyarrow as pa

    from stx_pipeline.days import day_window
    from stx_pipeline.hiro import HiroClient, fetch_day, records_to_table
    from stx_pipeline.hiro.transactions import LIST_PATH, page_params
    from stx_pipeline.storage import replace_day

    window = day_window(DAY)
    marks = {"after imports": (_vm("VmRSS"), _vm("VmHWM"))}
    with HiroClient(url, requests_per_minute=0) as client:
        if mode == "day":
            fetched = fetch_day(client, DAY, page_workers=4)
            marks["after fetch"] = (_vm("VmRSS"), _vm("VmHWM"))
            table = fetched.table
        else:
            from concurrent.futures import ThreadPoolExecutor

            def page(offset: int) -> tuple[int, Any]:
                payload = client.get_json(LIST_PATH, page_params(window[0], window[1], offset))
                return payload["total"], records_to_table(payload["results"], DAY, window=window)

            total, first = page(0)
            with ThreadPoolExecutor(max_workers=4) as pool:
                rest = [t for _, t in pool.map(page, range(PAGE_LIMIT, total, PAGE_LIMIT))]
            table = pa.concat_tables([first, *rest]).combine_chunks()  # 2,000 50-row chunks cost DuckDB dearly
        marks["after convert"] = (_vm("VmRSS"), _vm("VmHWM"))
    conn = duckdb.connect(str(Path(tempfile.mkdtemp(prefix="stx-bench-stages-")) / "stages.duckdb"))
    replace_day(conn, DAY, table)
    conn.close()
    marks["after write"] = (_vm("VmRSS"), _vm("VmHWM"))
    print(MARKER + json.dumps({"rows": table.num_rows, "marks": marks}))


def bench_rss_stages(txs: int) -> dict[str, Any]:
    from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain

    print(f"\n== c2. memory by step at {txs:,} tx/day: the asset's path vs per-page conversion ==", flush=True)
    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=txs))
    _warm(chain, DAY)
    out: dict[str, Any] = {}
    with SimulatorServer(chain, FaultConfig(), hide_future=False) as sim:
        for mode in ("day", "per-page"):
            _, rc, output = run_timed([PYTHON, __file__, "--child-stages", sim.url, mode], cwd=PROJECT_ROOT)
            if rc != 0:
                raise SystemExit(f"child failed:\n{output[-3000:]}")
            data = _child_result(output)
            out[mode] = data
            steps = " -> ".join(f"{k} {v[0] / 2**20:.0f}/{v[1] / 2**20:.0f}" for k, v in data["marks"].items())
            print(f"  {mode:<9} {data['rows']:,} rows, MiB VmRSS/VmHWM: {steps}", flush=True)
    return out


def _child_result(output: str) -> dict[str, Any]:
    for line in reversed(output.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise SystemExit(f"no result from the child:\n{output[-3000:]}")


def _warm(chain: Any, day: dt.date) -> None:
    chain.day_transactions(day)  # the simulator generates a day on first request: not part of the fetch


def _dagster_home(work: Path) -> Path:
    from stx_pipeline.operations.background import make_dagster_home

    return make_dagster_home(work / "dagster_home")


def bench_materialize(work: Path, reps: int, txs: int) -> dict[str, Any]:
    import dagster as dg

    from stx_pipeline.definitions import defs
    from stx_pipeline.devtools.resources import pipeline_resources
    from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain

    stx_transactions = defs().get_assets_def(ASSET_NAME)  # as the code location builds it

    print(f"\n== b. one {txs:,}-transaction day, simulator without latency, requests_per_minute=0 ==", flush=True)
    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=txs))
    _warm(chain, DAY)
    out: dict[str, Any] = {"rows": chain.day_total(DAY)}
    with SimulatorServer(chain, FaultConfig(), hide_future=False) as sim:
        # 1. dagster.materialize in this process (imports already paid), simulator thread in the same process.
        runs = []
        for i in range(reps):
            db = work / f"mat{i}.duckdb"
            started = time.perf_counter()
            result = dg.materialize(
                [stx_transactions], resources=pipeline_resources(sim.url, db), partition_key=DAY.isoformat()
            )
            wall = time.perf_counter() - started
            meta = result.asset_materializations_for_node(ASSET_NAME)[0].metadata
            (day,) = meta["per_day"].value
            runs.append({"wall_s": wall, **day})
        out["in_process"] = runs
        print(f"dg.materialize in this process (simulator thread shares the GIL), {out['rows']:,} rows:")
        for r in runs:
            print(
                f"  wall {r['wall_s']:.2f} s = fetch {r['fetch_s']:.2f} s ({r['pages']} pages) + "
                f"write {r['write_s']:.3f} s + Dagster/checks {r['wall_s'] - r['fetch_s'] - r['write_s']:.2f} s"
            )
        print(f"  median wall {median([r['wall_s'] for r in runs]):.2f} s", flush=True)

        # 2. the same in a fresh child process (simulator stays here): its own GIL, cold imports.
        child = []
        for i in range(reps):
            db = work / f"child{i}.duckdb"
            wall, rc, output = run_timed(
                [PYTHON, __file__, "--child-materialize", sim.url, str(db), DAY.isoformat()], cwd=PROJECT_ROOT
            )
            if rc != 0:
                raise SystemExit(f"child materialize failed:\n{output}")
            data = _child_result(output)
            (day,) = data["per_day"]
            child.append({"process_s": wall, "import_s": data["import_s"], "run_s": data["run_s"], **day})
        out["child"] = child
        print("dg.materialize in a child process (simulator in this one):")
        for r in child:
            print(
                f"  process {r['process_s']:.2f} s: imports {r['import_s']:.2f} s, run {r['run_s']:.2f} s = "
                f"fetch {r['fetch_s']:.2f} s + write {r['write_s']:.3f} s + Dagster/checks "
                f"{r['run_s'] - r['fetch_s'] - r['write_s']:.2f} s"
            )
        print(f"  median process {median([r['process_s'] for r in child]):.2f} s", flush=True)

        # 3. the documented shell command, cold: `dagster asset materialize` with a real (temporary) instance.
        home = _dagster_home(work)
        env = dict(os.environ)
        env.update(
            {
                "DAGSTER_HOME": str(home),
                "STX_API_URL": sim.url,
                "STX_REQUESTS_PER_MINUTE": "0",
                "STX_DUCKDB_PATH": str(work / "cli.duckdb"),
                "STX_PUBLIC_DIR": str(work / "public"),
                "STX_DAILY_TOPUP": "off",
            }
        )
        cmd = [
            str(VENV_BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "stx_pipeline.definitions",
            "--select",
            ASSET_NAME,
            "--partition",
            DAY.isoformat(),
        ]
        cli = []
        for _ in range(reps):
            wall, rc, output = run_timed(cmd, env=env, cwd=PROJECT_ROOT)
            if rc != 0:
                raise SystemExit(f"dagster asset materialize failed:\n{output[-3000:]}")
            cli.append(wall)
        split = _latest_per_day(home)
        out["cli"] = {"walls": cli, "last_per_day": split}
        print("`" + " ".join(["dagster", *cmd[1:]]) + "` (cold, temp DAGSTER_HOME):")
        print(f"  walls {', '.join(f'{w:.2f}' for w in cli)} s; median {median(cli):.2f} s")
        if split:
            print(f"  last run: fetch {split['fetch_s']:.2f} s, write {split['write_s']:.3f} s, {split['pages']} pages")
    return out


def _latest_per_day(home: Path) -> dict[str, Any] | None:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(ASSET_NAME))
        if event is None or event.asset_materialization is None:
            return None
        per_day = event.asset_materialization.metadata.get("per_day")
        return per_day.value[-1] if per_day is not None else None


def bench_rss(work: Path, txs: int, n_days: int = 1) -> dict[str, Any]:
    from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain

    print(
        f"\n== c. peak RSS of a run of {n_days} day(s) at {txs:,} transactions a day (fresh child process) ==",
        flush=True,
    )
    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=txs))
    for i in range(n_days):
        _warm(chain, DAY + dt.timedelta(days=i))
    with SimulatorServer(chain, FaultConfig(), hide_future=False) as sim:
        wall, rc, output = run_timed(
            [PYTHON, __file__, "--child-materialize", sim.url, str(work / "rss.duckdb"), DAY.isoformat(), str(n_days)],
            cwd=PROJECT_ROOT,
        )
    if rc != 0:
        raise SystemExit(f"child materialize failed:\n{output}")
    data = _child_result(output)
    for day in data["per_day"]:
        print(
            f"{day['day']}: {day['rows']:,} rows, {day['pages']} pages (fetch {day['fetch_s']:.1f} s, "
            f"write {day['write_s']:.2f} s)",
            flush=True,
        )
    print(
        f"  run {data['run_s']:.1f} s; RSS after imports {data['rss_after_import'] / 2**20:.0f} MiB; peak RSS "
        f"(VmHWM) {data['peak_rss'] / 2**20:.0f} MiB",
        flush=True,
    )
    return {"process_s": wall, **data}


# -- d. pages per day and the rate-limit floor ----------------------------------------------------------


def bench_pages(measured_days: int = 30) -> dict[str, Any]:
    from stx_pipeline.simulator import ChainConfig, SyntheticChain

    print("\n== d. pages per day and the time floor set by the rate limit ==", flush=True)
    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=5000))
    days = [DAY + dt.timedelta(days=i) for i in range(measured_days)]
    totals = [chain.day_total(d) for d in days]
    pages = [max(1, math.ceil(t / PAGE_LIMIT)) for t in totals]
    mean_pages = sum(pages) / len(pages)
    print(
        f"simulator at 5,000 tx/day over {measured_days} days: transactions/day {min(totals):,}..{max(totals):,} "
        f"(mean {sum(totals) / len(totals):,.0f}), pages/day {min(pages)}..{max(pages)} (mean {mean_pages:.1f})\n"
        "requests per day = pages per day (the first page also answers `total`; no extra sizing call)\n"
        "floor: minutes per day = pages / (requests per minute); N days = N x that (pacing, no 429s, no latency)"
    )
    rates = [  # the client paces one request per minute under the advertised limit (hiro/pacing.py)
        ("no key, client pace", 49),
        ("no key, Hiro doc", 50),
        ("key, client pace", 499),
        ("key, Hiro doc", 500),
    ]
    sizes = [
        ("5k (simulator, measured)", mean_pages),
        ("20k", math.ceil(20_000 / PAGE_LIMIT)),
        ("60k", math.ceil(60_000 / PAGE_LIMIT)),
    ]
    table: list[dict[str, Any]] = []
    ns = [7, 30, 90, 180, 365]
    header = f"{'tx/day':<26}{'req/min':>8}{'pages/day':>10}{'min/day':>9}" + "".join(f"{f'{n} d':>10}" for n in ns)
    print(header)
    for size_label, p in sizes:
        for rate_label, rpm in rates:
            per_day_min = p / rpm
            row = {"size": size_label, "rate": rate_label, "rpm": rpm, "pages": p, "min_per_day": per_day_min}
            cells = []
            for n in ns:
                hours = n * per_day_min / 60
                row[str(n)] = hours
                cells.append(f"{_fmt_hours(hours):>10}")
            table.append(row)
            print(f"{size_label:<26}{rpm:>8}{p:>10.1f}{per_day_min:>9.2f}" + "".join(cells))
    quota = 150_000
    print(
        f"free-tier monthly quota {quota:,} requests = "
        f"{quota / math.ceil(60_000 / PAGE_LIMIT):.0f} days at 60k tx/day, "
        f"{quota / math.ceil(20_000 / PAGE_LIMIT):.0f} at 20k, {quota / mean_pages:.0f} at 5k",
        flush=True,
    )
    return {"totals": totals, "pages": pages, "mean_pages": mean_pages, "table": table}


def bench_requests(days: int = 5, txs: int = 5_000) -> dict[str, Any]:
    """Real API calls per day through the asset's own fetcher (DayFetcher), per listing strategy."""
    from stx_pipeline.hiro import HiroClient
    from stx_pipeline.hiro.strategy import DayFetcher
    from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain

    print(f"\n== d2. API requests per day by listing strategy (simulator, {txs:,} tx/day, {days} days) ==", flush=True)
    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=txs))
    wanted = [DAY + dt.timedelta(days=i) for i in range(days)]
    out: dict[str, Any] = {}
    for label, strategy, faults in (
        ("v1 (offset paging)", "v1", FaultConfig()),
        ("v3 (cursor paging)", "v3", FaultConfig()),
        ("auto after the v1 sunset (410)", "auto", FaultConfig(gone=True)),
    ):
        with SimulatorServer(chain, faults, hide_future=False) as sim, HiroClient(sim.url, requests_per_minute=0) as c:
            fetcher = DayFetcher(c, strategy, page_workers=4)
            rows = []
            for day in wanted:
                before = c.stats.snapshot()["requests"]
                fetched = fetcher.fetch(day)
                rows.append(
                    (fetched.total, math.ceil(fetched.total / PAGE_LIMIT), c.stats.snapshot()["requests"] - before)
                )
        per_day = [r for _, _, r in rows]
        extra = [r - p for _, p, r in rows]
        out[strategy if not faults.gone else "auto-gone"] = rows
        print(
            f"  {label:<32} requests/day {min(per_day)}..{max(per_day)} (mean {sum(per_day) / len(per_day):.1f}); "
            f"over ceil(total/50): {', '.join(f'{e:+d}' for e in extra)}",
            flush=True,
        )
    return out


def _fmt_hours(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child-stages":
        child_stages(*sys.argv[2:])
        return
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--child-materialize":
        child_materialize(*sys.argv[2:5], *(int(n) for n in sys.argv[5:]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", metavar="part", help="write | materialize | rss | pages (default: all)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--prefill-rows", type=int, default=1_000_000)
    parser.add_argument("--materialize-txs", type=int, default=5_000)
    parser.add_argument("--rss-txs", type=int, default=100_000)
    parser.add_argument("--rss-days", type=int, default=1, help="rss: days in the run (2+: with the lookahead)")
    parser.add_argument("--json", type=Path, help="Also write every figure to this file.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder.")
    args = parser.parse_args()
    parts = args.parts or list(PARTS)
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    print_machine()
    work = Path(tempfile.mkdtemp(prefix="stx-bench-ingest-"))
    results: dict[str, Any] = {}
    try:
        if "pages" in parts:
            results["pages"] = bench_pages()
        if "requests" in parts:
            results["requests"] = bench_requests()
        if "write" in parts:
            results["write"] = bench_write(work, args.reps, [50_000, 100_000], args.prefill_rows)
        if "materialize" in parts:
            results["materialize"] = bench_materialize(work, max(3, args.reps // 2 + 1), args.materialize_txs)
        if "rss" in parts:
            results["rss"] = bench_rss(work, args.rss_txs, args.rss_days)
        if "rss-stages" in parts:
            results["rss_stages"] = bench_rss_stages(args.rss_txs)
    finally:
        if args.keep:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
