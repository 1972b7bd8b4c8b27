"""Reliability: faults over a 30-day backfill, crashes mid-write, bad input, secrets. Real HTTP, files, instance."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from stx_pipeline.definitions import defs
from stx_pipeline.devtools.resources import pipeline_resources
from stx_pipeline.resources import HiroApiResource
from stx_pipeline.simulator import FaultConfig, SimulatorServer
from stx_pipeline.storage import day_content_hash, day_counts, duplicate_tx_ids
from stx_pipeline_tests.children import read_line
from stx_pipeline_tests.conftest import PROJECT_ROOT, dagster_instance, days, failure_message

# As the code location builds it from this environment (conftest: STX_START_DATE=2024-11-01).
stx_transactions = defs().get_assets_def("stx_transactions")

THIRTY = days("2025-02-01", 30)
PLANTED_KEY = "hiro-planted-key-7f3a9c1e5b"


def run_range(
    sim_url: str, db: Path, first: dt.date, last: dt.date, instance=None, **hiro
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [stx_transactions],
        resources=pipeline_resources(sim_url, db, **hiro),
        instance=instance,
        tags={"dagster/asset_partition_range_start": str(first), "dagster/asset_partition_range_end": str(last)},
        raise_on_error=False,
    )


def hashes(db: Path, wanted: list[dt.date]) -> dict[dt.date, str]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {d: day_content_hash(conn, d) for d in wanted}


@pytest.mark.slow  # sixty days fetched through every fault class (~50 s)
def test_thirty_days_under_every_fault_class_equal_a_fault_free_run(simulator, small_chain, tmp_path):
    clean, faulty = tmp_path / "clean.duckdb", tmp_path / "faulty.duckdb"
    for i in range(0, 30, 10):
        assert run_range(simulator.url, clean, THIRTY[i], THIRTY[i + 9]).success
    retries = rate_limited = 0
    # Each 10-day batch uses another retry-after form; 5xx, resets, truncation and latency spikes throughout.
    for i, mode in zip(range(0, 30, 10), ("seconds", "http-date", "zero"), strict=True):
        simulator.faults = FaultConfig(
            error_rate=0.10,
            reset_rate=0.03,
            truncate_rate=0.03,
            latency_spike_rate=0.05,
            latency_spike_ms=300,
            burst_429_every=25,
            burst_429_length=2,
            retry_after_mode=mode,
            fault_seed=i,
        )
        result = run_range(simulator.url, faulty, THIRTY[i], THIRTY[i + 9], max_backoff_s=0.5)
        assert result.success
        metadata = result.asset_materializations_for_node("stx_transactions")[0].metadata
        retries += metadata["retries"].value
        rate_limited += metadata["http_429_received"].value
        # The figures quoted in docs/RELIABILITY.md (cumulative; run with -s to see them).
        print(
            f"batch {THIRTY[i]}..{THIRTY[i + 9]} retry-after={mode}: retries={retries} http_429={rate_limited} "
            f"faults={simulator.stats()['faults']} requests={simulator.stats()['requests']}"
        )
    injected = simulator.stats()["faults"]
    assert injected.get("error", 0) > 0 and injected.get("reset", 0) > 0 and injected.get("truncate", 0) > 0
    assert retries > 0 and rate_limited > 0  # the retries are visible in the metadata
    assert hashes(faulty, THIRTY) == hashes(clean, THIRTY)
    with duckdb.connect(str(faulty), read_only=True) as conn:
        assert duplicate_tx_ids(conn) == 0
        assert day_counts(conn, THIRTY) == {d: small_chain.day_total(d) for d in THIRTY}


# The child runs the real `replace_day` on a real file. Its `rows` is an Arrow C stream (something DuckDB scans, as
# replace_day's docstring allows) over a new listing of the day: every scan returns the whole table, except the
# INSERT's (the scan after the reorg DELETE has read it once), which hands DuckDB every row and then, before ending,
# says "mid-write" and waits to be killed. So SIGKILL lands after both DELETEs and the INSERT's rows, before COMMIT:
# no timing guess, no patched DuckDB.
WRITER_SCRIPT = textwrap.dedent(
    """
    import datetime as dt, sys, time
    import duckdb, pyarrow as pa
    from stx_pipeline.hiro import records_to_table
    from stx_pipeline.simulator import ChainConfig, SyntheticChain
    from stx_pipeline.storage import replace_day

    class StalledOnInsert:
        def __init__(self, table):
            self.table, self.scans_read = table, 0

        def batches(self):
            yield from self.table.to_batches(max_chunksize=500)
            if self.scans_read >= 1:  # the reorg DELETE read the rows once: this scan is the INSERT's
                print("mid-write", len(self.table), flush=True)
                time.sleep(600)
            self.scans_read += 1

        def __arrow_c_stream__(self, requested_schema=None):
            reader = pa.RecordBatchReader.from_batches(self.table.schema, self.batches())
            return reader.__arrow_c_stream__(requested_schema)

    db, day = sys.argv[1], dt.date.fromisoformat(sys.argv[2])
    table = records_to_table(SyntheticChain(ChainConfig(seed=99, txs_per_day=3000)).day_transactions(day), day)
    replace_day(duckdb.connect(db), day, StalledOnInsert(table))
    print("committed", flush=True)  # never reached: the test kills the process first
    """
)


@pytest.mark.slow  # starts a process: the writer killed with SIGKILL
def test_kill_9_in_the_middle_of_a_day_write_leaves_the_old_day(simulator, small_chain, tmp_path):
    """The real replace_day, killed by SIGKILL after its DELETEs and INSERT ran, before its COMMIT."""
    db = tmp_path / "crash.duckdb"
    day = THIRTY[0]
    assert run_range(simulator.url, db, day, day).success
    before = hashes(db, [day])
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(db), str(day)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        line = read_line(writer, timeout_s=120)
        new_rows = int(line.split()[1]) if line.startswith("mid-write ") else 0
        assert new_rows > 0, f"the writer did not stop mid-write: {line!r}"
    finally:
        writer.kill()  # SIGKILL: no rollback, no close, no atexit
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    assert new_rows != small_chain.day_total(day)  # the killed listing differs from the stored one
    # The database opens; the day is the old one, whole.
    assert hashes(db, [day]) == before
    with duckdb.connect(str(db), read_only=True) as conn:
        assert day_counts(conn, [day]) == {day: small_chain.day_total(day)}
    # And a second run completes on top of it.
    assert run_range(simulator.url, db, day, THIRTY[2]).success
    with duckdb.connect(str(db), read_only=True) as conn:
        assert day_counts(conn, THIRTY[:3]) == {d: small_chain.day_total(d) for d in THIRTY[:3]}


@pytest.mark.slow  # starts a process: the run killed with SIGKILL
def test_kill_9_of_a_multi_day_run_loses_nothing_and_a_rerun_completes(small_chain, tmp_path):
    """A run process killed after some days were committed: those days are whole, the rest absent."""
    db = tmp_path / "multi.duckdb"
    with SimulatorServer(small_chain, FaultConfig(latency_ms=40)) as sim:
        script = textwrap.dedent(
            f"""
            import dagster as dg
            from stx_pipeline.definitions import defs
            stx_transactions = defs().get_assets_def("stx_transactions")
            from stx_pipeline.devtools.resources import pipeline_resources
            # 300 requests/min (~1.6 s a day of ~8 pages): days land one by one, slow enough for the poll below
            # to see 2 committed before all 10 are (unpaced, overlapped days can all land between two polls).
            dg.materialize([stx_transactions],
                resources=pipeline_resources({sim.url!r}, {str(db)!r}, requests_per_minute=300),
                tags={{"dagster/asset_partition_range_start": "{THIRTY[0]}",
                       "dagster/asset_partition_range_end": "{THIRTY[9]}"}})
            """
        )
        run = subprocess.Popen(
            [sys.executable, "-c", script], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Wait until at least two days are committed, then kill the run worker without warning.
        import time

        deadline = time.monotonic() + 120
        committed = 0
        while time.monotonic() < deadline and committed < 2:
            time.sleep(0.2)
            try:
                with duckdb.connect(str(db), read_only=True) as conn:
                    committed = sum(1 for n in day_counts(conn, THIRTY[:10]).values() if n)
            except duckdb.Error:
                continue  # the writer holds the lock for a moment
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        assert 2 <= committed < 10
        with duckdb.connect(str(db), read_only=True) as conn:
            counts = day_counts(conn, THIRTY[:10])
        # Every day is whole or absent, never partial.
        assert all(n in (0, small_chain.day_total(d)) for d, n in counts.items()), counts
        assert run_range(sim.url, db, THIRTY[0], THIRTY[9]).success
    with duckdb.connect(str(db), read_only=True) as conn:
        assert day_counts(conn, THIRTY[:10]) == {d: small_chain.day_total(d) for d in THIRTY[:10]}
        assert duplicate_tx_ids(conn) == 0


@pytest.mark.parametrize(
    ("faults", "key", "needle"),
    [
        (FaultConfig(), "wrong-key", "HTTP 401"),
        (FaultConfig(monthly_quota=3), PLANTED_KEY, "monthly request quota exhausted"),
    ],
)
def test_key_and_quota_errors_stop_the_run_clearly(small_chain, tmp_path, monkeypatch, faults, key, needle):
    monkeypatch.setenv("HIRO_API_KEY", key)
    db = tmp_path / "k.duckdb"
    with SimulatorServer(small_chain, faults, required_api_key=PLANTED_KEY) as sim:
        result = dg.materialize(
            [stx_transactions],
            resources={
                "hiro": HiroApiResource(base_url=sim.url, api_key=dg.EnvVar("HIRO_API_KEY"), requests_per_minute=0),
                "storage": pipeline_resources(sim.url, db)["storage"],
            },
            tags={
                "dagster/asset_partition_range_start": str(THIRTY[0]),
                "dagster/asset_partition_range_end": str(THIRTY[4]),
            },
            raise_on_error=False,
        )
        requests_made = sim.stats()["requests"]
    assert not result.success
    text = failure_message(result)
    assert needle in text
    assert key not in text
    # Stopped at once, not day after day: the quota's 3, then at most what was already in flight on the run's
    # 8 page threads (a day and the day listed ahead, 4 each) when the refusal came back.
    assert requests_made <= 3 + 8


def test_the_api_key_appears_nowhere(small_chain, tmp_path, monkeypatch):
    """A planted key, through a successful and a failing run: not in events, logs, metadata, DB or page."""
    from stx_pipeline.dashboard import build_dashboard_from_path

    monkeypatch.setenv("HIRO_API_KEY", PLANTED_KEY)
    db = tmp_path / "secret.duckdb"
    home = tmp_path / "home"
    home.mkdir()
    with (
        SimulatorServer(small_chain, FaultConfig(), required_api_key=PLANTED_KEY) as sim,
        dagster_instance(home) as instance,
    ):
        resources = {
            "hiro": HiroApiResource(base_url=sim.url, api_key=dg.EnvVar("HIRO_API_KEY"), requests_per_minute=0),
            "storage": pipeline_resources(sim.url, db)["storage"],
        }
        tags = {
            "dagster/asset_partition_range_start": str(THIRTY[0]),
            "dagster/asset_partition_range_end": str(THIRTY[1]),
        }
        ok = dg.materialize([stx_transactions], resources=resources, instance=instance, tags=tags)
        assert ok.success
        assert sim.stats()["requests_with_api_key"] > 0  # the key was really sent
        sim.faults = FaultConfig(fail_days=[str(THIRTY[2])])
        failed = dg.materialize(
            [stx_transactions],
            resources={
                **resources,
                "hiro": HiroApiResource(
                    base_url=sim.url, api_key=dg.EnvVar("HIRO_API_KEY"), requests_per_minute=0, max_attempts=2
                ),
            },
            instance=instance,
            tags={
                **tags,
                "dagster/asset_partition_range_start": str(THIRTY[2]),
                "dagster/asset_partition_range_end": str(THIRTY[2]),
            },
            raise_on_error=False,
        )
        assert not failed.success
        events = [
            str(record.event_log_entry)
            for run in (ok, failed)
            for record in instance.get_records_for_run(run.run_id).records
        ]
        runs = [str(instance.get_run_by_id(r.run_id)) for r in (ok, failed)]
    page = build_dashboard_from_path(str(db), str(tmp_path / "public")).path
    haystacks = {
        "events": "\n".join(events),
        "runs": "\n".join(runs),
        "page": Path(page).read_text(),
        "database": db.read_bytes().decode("latin-1"),
        "instance files": "\n".join(
            p.read_bytes().decode("latin-1") for p in home.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000
        ),
    }
    assert "HTTP 500" in haystacks["events"]  # the failure really is in there
    for name, text in haystacks.items():
        assert PLANTED_KEY not in text, f"the API key leaked into {name}"


def test_the_ui_binds_to_loopback_by_default():
    from stx_pipeline.operations.background import dagster_service

    argv = dagster_service("127.0.0.1", 3000).argv
    assert argv[argv.index("-h") + 1] == "127.0.0.1"
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "UI_HOST ?= 127.0.0.1" in makefile
