"""Plans from both sources, large work announced, wrong configuration failing at once (issue #11, items 2, 3, 5).

Real DuckDB files, the simulator over HTTP on 127.0.0.1, a real Dagster instance; the CLI in subprocesses.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from stx_pipeline.days import last_complete_day
from stx_pipeline.definitions import defs
from stx_pipeline.devtools.dagster_env import cli, free_port, pipeline_env
from stx_pipeline.devtools.resources import pipeline_resources
from stx_pipeline.hiro.client import DEFAULT_RPM_WITH_KEY, DEFAULT_RPM_WITHOUT_KEY
from stx_pipeline.planning import (
    FAILED,
    IN_PROGRESS,
    MATERIALIZED,
    estimate_fetch,
    plan_days,
    read_stored_rows,
    with_pending,
)
from stx_pipeline.storage import StorageError, day_counts
from stx_pipeline_tests.conftest import dagster_instance, days, failure_message, lock_held_by_another_process
from stx_pipeline_tests.test_bad_input import read_only_directory

# As the code location builds it from this environment (conftest: STX_START_DATE=2024-11-01).
stx_transactions = defs().get_assets_def("stx_transactions")

W = days("2025-03-01", 6)


def text(result) -> str:
    return " ".join((result.stdout + "\n" + result.stderr).split())


def env_for(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    return pipeline_env(tmp_path, url, STX_UI_URL=f"http://127.0.0.1:{free_port()}", COLUMNS="400", **extra)


def stored(env: dict[str, str], window: list[dt.date]) -> dict[dt.date, int]:
    with duckdb.connect(env["STX_DUCKDB_PATH"], read_only=True) as conn:
        return day_counts(conn, window)


# -- item 2: a day is stored only when both sources say so ----------------------------------------


def test_a_day_is_stored_only_when_materialized_and_in_duckdb():
    statuses = {W[0]: MATERIALIZED, W[1]: MATERIALIZED, W[2]: FAILED, W[3]: IN_PROGRESS, W[4]: None}
    rows = {W[0]: 400, W[1]: 0, W[2]: 0, W[3]: 0, W[4]: 400, W[5]: 0}  # W[4]: rows, but never materialized
    plan = plan_days(W, statuses, rows)
    assert plan.stored == [W[0]]
    assert plan.lost == [W[1]]
    assert plan.in_progress == [W[3]]
    assert plan.requested == [W[1], W[2], W[4], W[5]]
    forced = plan_days(W, statuses, rows, force=True)
    assert forced.requested == [W[0], W[1], W[2], W[4], W[5]]  # never a day another run is writing


def test_days_an_unfinished_backfill_targets_are_in_progress_not_requested_again():
    statuses = {W[0]: MATERIALIZED, W[1]: MATERIALIZED}
    rows = {W[0]: 400, W[1]: 0}
    pending = {W[1], W[2], W[3]}  # W[1] is being fetched again by it (lost), W[2..3] not started yet
    plan = plan_days(W, with_pending(statuses, pending), rows, pending=pending)
    assert plan.in_progress == [W[1], W[2], W[3]]
    assert plan.requested == [W[4], W[5]]


def test_stored_rows_come_from_duckdb_nothing_stored_is_zero_and_unreadable_is_an_error(tmp_path):
    missing = tmp_path / "none" / "wallet_metrics.duckdb"
    assert read_stored_rows(missing, W) == dict.fromkeys(W, 0)
    directory = tmp_path / "dir.duckdb"
    directory.mkdir()
    with pytest.raises(StorageError, match="Is it a DuckDB database file"):
        read_stored_rows(directory, W)
    foreign = tmp_path / "foreign.duckdb"
    foreign.write_bytes(b"not a database" * 500)
    with pytest.raises(StorageError):
        read_stored_rows(foreign, W)


@pytest.mark.slow  # starts a process: another process holds the DuckDB lock
def test_a_file_locked_by_a_writer_is_an_error_after_the_wait_never_zero_rows(tmp_path):
    db = tmp_path / "locked.duckdb"
    duckdb.connect(str(db)).close()
    with lock_held_by_another_process(db, seconds=30), pytest.raises(StorageError, match="stayed locked"):
        read_stored_rows(db, W, timeout_s=0.5)


@pytest.mark.slow  # starts a process: the CLI
def test_a_deleted_database_file_is_fetched_again_not_nothing_to_do(tmp_path, simulator, small_chain):
    """The issue's scenario: after deleting the DuckDB file only --force recovered the days."""
    env = env_for(tmp_path, simulator.url)
    last3 = [last_complete_day() - dt.timedelta(days=i) for i in (2, 1, 0)]
    first = cli(["backfill", "--days", "3", "--in-process"], env)
    assert first.returncode == 0, text(first)
    again = cli(["backfill", "--days", "3", "--in-process"], env)
    assert "Nothing to do: every day of the window is stored in DuckDB and materialized" in text(again)
    assert again.returncode == 0

    Path(env["STX_DUCKDB_PATH"]).unlink()
    status = cli(["status", "--days", "3", "--instance"], env)
    assert status.returncode == 2, text(status)
    assert f"materialized: 3 (not in DuckDB: {last3[0]}..{last3[2]}; a backfill fetches them again)" in text(status)

    refetch = cli(["backfill", "--days", "3", "--in-process"], env)
    out = text(refetch)
    assert refetch.returncode == 0, out
    assert f"3 days are materialized in the Dagster instance but have no rows in DuckDB ({last3[0]}..{last3[2]})" in out
    assert "3 to fetch" in out and "All 3 days succeeded." in out
    assert stored(env, last3) == {d: small_chain.day_total(d) for d in last3}


@pytest.mark.slow  # starts a process: the CLI
def test_an_unreadable_database_path_is_never_read_as_stored(tmp_path, simulator):
    env = env_for(tmp_path, simulator.url)
    assert cli(["backfill", "--days", "1", "--in-process"], env).returncode == 0
    db = Path(env["STX_DUCKDB_PATH"])
    db.rename(db.with_suffix(".moved"))
    db.mkdir()  # STX_DUCKDB_PATH is now a directory: the instance still says materialized
    result = cli(["backfill", "--days", "1", "--in-process"], env)
    out = text(result)
    assert result.returncode == 1, out
    assert "Cannot plan:" in out and "Nothing was launched" in out
    assert "Nothing to do" not in out


# -- item 3: large work is announced --------------------------------------------------------------


def test_the_estimate_follows_the_calls_per_day_table_and_the_budget():
    keyless = estimate_fetch(180, requests_per_minute=None, keyed=False)
    assert keyless.requests == 180 * 105  # docs/BACKFILL.md: 105 pages for a ~5,000-tx day
    assert keyless.minutes == pytest.approx(18_900 / DEFAULT_RPM_WITHOUT_KEY)
    assert f"~{18_900 / DEFAULT_RPM_WITHOUT_KEY / 60:.1f} h at {DEFAULT_RPM_WITHOUT_KEY} requests/min" in (
        keyless.describe()
    )
    keyed = estimate_fetch(180, requests_per_minute=None, keyed=True)
    assert keyed.requests_per_minute == DEFAULT_RPM_WITH_KEY and "HIRO_API_KEY" not in keyed.describe()
    # From the chain being fetched: 400-tx days are 8 pages of 50.
    small = estimate_fetch(10, requests_per_minute=40, keyed=False, stored_rows={W[0]: 400, W[1]: 390, W[2]: 0})
    assert (small.requests_per_day, small.requests) == (8, 80)
    assert "no request budget" in estimate_fetch(3, requests_per_minute=0, keyed=False).describe()


@pytest.mark.slow  # starts a process: the CLI
def test_a_large_backfill_needs_yes_when_there_is_no_terminal_to_ask_on(tmp_path, simulator, small_chain):
    env = env_for(tmp_path, simulator.url, STX_CONFIRM_ABOVE_DAYS="2")
    refused = cli(["backfill", "--days", "3", "--in-process"], env)
    out = text(refused)
    assert refused.returncode == 2, out
    assert "3 days to fetch is more than 2" in out and "Add --yes to go ahead" in out
    assert "about" in out and "requests" in out  # the estimate is part of the refusal
    assert simulator.stats()["requests"] == 0 and not Path(env["STX_DUCKDB_PATH"]).exists()

    accepted = cli(["backfill", "--days", "3", "--in-process", "--yes"], env)
    assert accepted.returncode == 0, text(accepted)
    assert "Estimate: 3 days, about" in accepted.stdout
    last3 = [last_complete_day() - dt.timedelta(days=i) for i in (2, 1, 0)]
    assert stored(env, last3) == {d: small_chain.day_total(d) for d in last3}


@pytest.mark.slow  # starts a process: the CLI
def test_the_default_threshold_is_90_days(tmp_path):
    env = env_for(tmp_path, "http://127.0.0.1:9")
    result = cli(["backfill", "--days", "91", "--in-process"], env, timeout=120)
    assert result.returncode == 2, text(result)
    assert "91 days to fetch is more than 90" in text(result)


@pytest.mark.slow  # starts a process: the CLI
def test_plan_announces_the_topup_window_and_its_duration(tmp_path):
    env = env_for(tmp_path, "http://127.0.0.1:9", STX_DAILY_TOPUP="on", STX_TARGET_DAYS="180")
    env.pop("STX_REQUESTS_PER_MINUTE")
    env.pop("HIRO_API_KEY", None)
    result = cli(["plan", "--topup"], env, timeout=120)
    out = text(result)
    assert result.returncode == 0, out
    hours = 18_900 / DEFAULT_RPM_WITHOUT_KEY / 60
    assert "daily_topup will fetch 180 missing days of the last 180 days" in out
    assert "about 18,900 requests" in out and f"~{hours:.1f} h at {DEFAULT_RPM_WITHOUT_KEY} requests/min" in out


# -- item 5: wrong configuration fails at once ----------------------------------------------------


def _materialize(resources: dict[str, object], first: dt.date, last: dt.date, instance: dg.DagsterInstance):
    return dg.materialize(
        [stx_transactions],
        instance=instance,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        raise_on_error=False,
    )


# read_only_directory runs chattr (a process) when run as root.
@pytest.mark.parametrize(
    "kind", ["directory", "under_a_file", pytest.param("read_only_directory", marks=pytest.mark.slow)]
)
def test_an_unusable_database_path_fails_the_run_before_any_request(tmp_path, simulator, kind):
    if kind == "directory":
        db = tmp_path / "wallet_metrics.duckdb"
        db.mkdir()
        needle = f"{db} is a directory, not a DuckDB database file. Nothing was written"
    elif kind == "under_a_file":
        (tmp_path / "data").write_text("a file")
        db = tmp_path / "data" / "sub" / "wallet_metrics.duckdb"
        needle = f"cannot create {db}: {tmp_path / 'data'} is a file, not a directory"
    else:
        (tmp_path / "ro").mkdir()
        db = tmp_path / "ro" / "wallet_metrics.duckdb"
        needle = f"cannot create {db}: the directory {tmp_path / 'ro'} is read-only"
    with dagster_instance() as instance:
        if kind == "read_only_directory":
            with read_only_directory(tmp_path / "ro"):
                result = _materialize(pipeline_resources(simulator.url, db), W[0], W[2], instance)
        else:
            result = _materialize(pipeline_resources(simulator.url, db), W[0], W[2], instance)
    assert not result.success
    assert needle in failure_message(result)
    assert simulator.stats()["requests"] == 0  # not one request: the path is checked first


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_connection_refused_stops_the_run_after_the_first_day(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with dagster_instance() as instance:
        result = _materialize(pipeline_resources(closed, tmp_path / "w.duckdb", max_attempts=2), W[0], W[3], instance)
    message = failure_message(result)
    assert not result.success
    assert f"The API at {closed} cannot be reached (connection refused or unknown host): check STX_API_URL" in message
    assert f"partition {W[0]}" in message
    assert f"Not attempted after it: {', '.join(d.isoformat() for d in W[1:4])}" in message


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_a_reset_connection_mid_run_does_not_stop_the_other_days(tmp_path, small_chain):
    """Only a connection that cannot be opened stops the run; a connection reset by the server stays a per-day fault."""
    from stx_pipeline.simulator import FaultConfig, SimulatorServer

    with SimulatorServer(small_chain, FaultConfig()) as sim, dagster_instance() as instance:
        sim.faults = FaultConfig(reset_rate=1.0)
        result = _materialize(pipeline_resources(sim.url, tmp_path / "w.duckdb", max_attempts=2), W[0], W[1], instance)
    message = failure_message(result)
    assert "2 of 2 days failed" in message and "cannot be reached" not in message


# -- through the webserver and daemon (slow: starts `dagster dev`) --------------------------------


@pytest.mark.slow
def test_days_in_progress_are_followed_by_wait_and_a_different_api_url_is_warned(tmp_path, small_chain):
    from stx_pipeline.devtools.dagster_env import dagster_dev
    from stx_pipeline.simulator import FaultConfig, SimulatorServer

    last3 = [last_complete_day() - dt.timedelta(days=i) for i in (2, 1, 0)]
    # Slow answers keep the first backfill busy while the second command plans.
    with SimulatorServer(small_chain, FaultConfig(latency_ms=1000)) as sim:
        env = pipeline_env(tmp_path, sim.url, COLUMNS="400")
        with dagster_dev(tmp_path, env) as ui:
            env["STX_UI_URL"] = ui
            first = cli(["backfill", "--days", "3"], env)
            assert first.returncode == 0, text(first)
            assert "Launched backfill" in first.stdout

            second = cli(["backfill", "--days", "3", "--wait"], env)
            out = text(second)
            assert second.returncode == 0, out
            assert "0 to fetch, 3 in progress" in out
            assert "Nothing new to launch: every missing day is already being fetched by another run" in out
            assert "Launched backfill" not in out  # not fetched twice
            assert "All 3 days succeeded." in out
            assert stored(env, last3) == {d: small_chain.day_total(d) for d in last3}

            elsewhere = "http://127.0.0.1:9"
            drift = cli(["backfill", "--days", "3"], {**env, "STX_API_URL": elsewhere})
            out = text(drift)
            assert drift.returncode == 0, out
            assert f"this shell has STX_API_URL={elsewhere} but the running code location uses {sim.url}" in out
            assert "Nothing to do: every day of the window is stored" in out

            # `status` beside a running code location that writes elsewhere (`make status` while `make demo` runs):
            # its instance part describes the other database, and it says so.
            other_db = tmp_path / "other.duckdb"
            status = cli(["status", "--target-days", "3"], {**env, "STX_DUCKDB_PATH": str(other_db)})
            out = text(status)
            assert status.returncode == 2, out  # nothing in the other file
            assert f"Warning: this shell has STX_DUCKDB_PATH={other_db} but the running code" in out
            assert f"writes to {env['STX_DUCKDB_PATH']}" in out
            same = cli(["status", "--target-days", "3"], env)
            assert same.returncode == 0, text(same)
            assert "Warning:" not in text(same)


@pytest.mark.slow  # starts the CLI as a process and kills it
def test_an_in_process_backfill_killed_mid_run_is_planned_again_by_the_next_one(tmp_path, small_chain):
    """kill -9 of `backfill --in-process` leaves its run STARTED, and no daemon runs there to notice: the next
    in-process backfill marks it failed (the daemon's run monitoring would have) and fetches its days, where
    before it counted them as in progress forever (and `--wait` followed a dead run)."""
    import os
    import signal
    import subprocess
    import time

    from stx_pipeline.devtools.dagster_env import CLI, PROJECT_ROOT
    from stx_pipeline.simulator import FaultConfig, SimulatorServer

    window = [last_complete_day() - dt.timedelta(days=i) for i in (2, 1, 0)]
    with SimulatorServer(small_chain, FaultConfig(latency_ms=1000)) as sim:
        env = env_for(tmp_path, sim.url)
        first = subprocess.Popen(
            [*CLI, "backfill", "--days", "3", "--in-process", "--yes"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started: list[dg.DagsterRun] = []
        deadline = time.monotonic() + 120
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            while not started and time.monotonic() < deadline and first.poll() is None:
                started = list(instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])))
                time.sleep(0.2)
        assert started, "the first backfill's run never started"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()

        again = cli(["backfill", "--days", "3", "--in-process", "--yes"], env)
        out = text(again)
        assert again.returncode == 0, out
        assert f"Marked failed: run {started[0].run_id[:8]} (run worker pid {first.pid} no longer exists)" in out
        assert "All 3 days succeeded." in out
        assert stored(env, window) == {d: small_chain.day_total(d) for d in window}
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            assert instance.get_run_by_id(started[0].run_id).status == dg.DagsterRunStatus.FAILURE
            assert not instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
