"""`kill -9` of the whole `make up` process group in the middle of a backfill, then `make up` again.

Real processes throughout: `dagster dev` (webserver, daemon, code server, run workers) started the way
`make up` starts it (operations/background.py, its own process group), the CLI in subprocesses, the simulator
over HTTP, the DuckDB file. The figures it prints are the ones in docs/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import psutil
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.storage.dagster_run import RunRecord

from stx_pipeline.devtools.dagster_env import cli, free_port, pipeline_env
from stx_pipeline.operations.background import dagster_service, stop, up
from stx_pipeline.operations.window import last_complete_day
from stx_pipeline.simulator import FaultConfig

pytestmark = pytest.mark.slow

RECOVERY_LIMIT_S = 120  # the dead run failed (and its pool slot free) within this of the restart
COMPLETE_LIMIT_S = 180  # every day whole in DuckDB within this of the restart


def committed(db: str, days: list[dt.date]) -> dict[dt.date, int]:
    """Rows per day, read the way `status` reads (read-only); {} while a writer holds the file."""
    if not Path(db).exists():
        return {}
    try:
        with duckdb.connect(db, read_only=True) as conn:
            rows = dict(
                conn.execute(
                    "SELECT partition_date, count(*) FROM stx_transactions WHERE partition_date BETWEEN ? AND ? "
                    "GROUP BY 1",
                    [days[0], days[-1]],
                ).fetchall()
            )
    except duckdb.Error:  # the writer's lock window, or the table not created yet
        return {}
    return {d: rows.get(d, 0) for d in days}


@contextmanager
def instance_at(home: str) -> Iterator[DagsterInstance]:
    """The test's own view of the instance `dagster dev` uses. dagster.yaml's relative paths are read against
    DAGSTER_HOME (stx_pipeline/instance_storage.py), so it must be set here too."""
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = home
    try:
        with DagsterInstance.get() as instance:
            yield instance
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous


def runs(home: str) -> list[RunRecord]:
    """Every run of the instance (the daily top-up is off: these are the backfills' runs), oldest first."""
    with instance_at(home) as instance:
        return sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    events = instance.event_log_storage.get_logs_for_run(run_id, of_type=DagsterEventType.RUN_START, limit=1)
    return events[0].dagster_event.pid if events and events[0].dagster_event else None


def test_kill_9_of_make_up_mid_backfill_recovers_on_restart(tmp_path, simulator, small_chain):
    env = pipeline_env(tmp_path, simulator.url)  # STX_DAYS_PER_RUN default 5: 10 days are 2 runs
    env.pop("STX_DAYS_PER_RUN", None)
    db = env["STX_DUCKDB_PATH"]
    # ~2-3 s per day (8 pages of 50 at 240 requests a minute, 700 ms each): time to kill with some days written and
    # more of the run to come. Unpaced, days listed one ahead of each other made a 5-day run take ~5 s, and the
    # run could end between the poll seeing 2 days and the test reading the runs (no STARTED run to kill).
    simulator.faults = FaultConfig(latency_ms=700)
    env["STX_REQUESTS_PER_MINUTE"] = "240"
    days = [last_complete_day() - dt.timedelta(days=i) for i in range(9, -1, -1)]
    window = ["--start", str(days[0]), "--end", str(days[-1])]
    port = free_port()
    service = dagster_service("127.0.0.1", port, run_dir=tmp_path / "run")
    env["STX_UI_URL"] = f"http://127.0.0.1:{port}"
    home = env["DAGSTER_HOME"]
    try:
        # 1. `make up` (its own function), a 10-day backfill; kill -9 the whole group once 2+ days are committed.
        up(service, env, timeout_s=240)
        launched = cli(["backfill", *window], env)
        assert launched.returncode == 0, launched.stdout + launched.stderr
        wait_until(
            lambda: sum(1 for n in committed(db, days).values() if n) >= 2,
            timeout_s=300,
            what="2 committed days",
            poll_s=0.5,
        )
        group = service.pid()
        assert group is not None
        dead = [r for r in runs(home) if r.dagster_run.status == DagsterRunStatus.STARTED]
        assert len(dead) == 1, [(r.dagster_run.run_id, r.dagster_run.status) for r in runs(home)]
        dead_run_id = dead[0].dagster_run.run_id
        with instance_at(home) as instance:
            dead_pid = worker_pid(instance, dead_run_id)
        os.killpg(group, signal.SIGKILL)
        # `dagster dev` is this process's child here (under `make up` its parent has exited): reap it, or the
        # zombie would pass for a running service on restart.
        with contextlib.suppress(ChildProcessError):  # already reaped by subprocess's own cleanup
            os.waitpid(group, 0)
        # The run worker was in the group: it really is gone (else the run would rightly be alive).
        assert dead_pid is not None
        wait_until(
            lambda: not psutil.pid_exists(dead_pid) or psutil.Process(dead_pid).status() == psutil.STATUS_ZOMBIE,
            10,
            "the run worker to exit",
            poll_s=0.1,
        )
        at_kill = committed(db, days)
        whole_at_kill = [d for d in days if at_kill.get(d)]
        assert 2 <= len(whole_at_kill) < 10, at_kill
        assert all(at_kill[d] in (0, small_chain.day_total(d)) for d in days), "a day is partial"

        # 2. `make up` again. No user action from here on except the plain re-run of the same command.
        restarted_at = time.time()
        up(service, env, timeout_s=240)
        up_s = time.time() - restarted_at

        def dead_run_failed() -> RunRecord | None:
            with instance_at(home) as instance:
                record = instance.get_run_record_by_id(dead_run_id)
            return record if record and record.dagster_run.status == DagsterRunStatus.FAILURE else None

        failed = wait_until(dead_run_failed, RECOVERY_LIMIT_S + 60, "run monitoring to fail the dead run")
        failed_after_s = failed.end_time - restarted_at
        with instance_at(home) as instance:
            failure = instance.event_log_storage.get_logs_for_run(
                dead_run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1, ascending=False
            )[0]

        # 3. The queue moves: the backfill's other run, held back by the `hiro_api` pool, starts.
        def next_run_started() -> RunRecord | None:
            others = [r for r in runs(home) if r.dagster_run.run_id != dead_run_id and r.start_time is not None]
            return min(others, key=lambda r: r.start_time) if others else None

        nxt = wait_until(next_run_started, 120, "the next queued run to start")
        next_started_after_s = nxt.start_time - restarted_at

        # 4. A plain re-run of the same command completes every day.
        rerun = cli(["backfill", *window, "--wait"], env, timeout=COMPLETE_LIMIT_S + 60)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        expected = {d: small_chain.day_total(d) for d in days}
        wait_until(lambda: committed(db, days) == expected, COMPLETE_LIMIT_S + 60, "every day whole in DuckDB")
        complete_after_s = time.time() - restarted_at
    finally:
        stop(service, grace_s=20)

    print(
        f"\nkill -9 with {len(whole_at_kill)}/10 days committed; after the restart: up and daemon healthy "
        f"{up_s:.0f}s, dead run FAILURE {failed_after_s:.0f}s, "
        f"next run started {next_started_after_s:.0f}s, every day whole {complete_after_s:.0f}s"
    )
    # Failed by Dagster's run monitoring through the launcher's health check, with what to do.
    assert "Marking run" in failure.message and "is gone" in failure.message, failure.message
    assert failed_after_s <= RECOVERY_LIMIT_S, failed_after_s
    assert next_started_after_s <= RECOVERY_LIMIT_S + 30, next_started_after_s
    assert complete_after_s <= COMPLETE_LIMIT_S, complete_after_s
    assert committed(db, days) == expected
