"""End to end in subprocesses: `dagster dev` on a temporary instance, the CLI, the simulator over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import duckdb
import pytest
import requests

from stx_pipeline.devtools.dagster_env import cli, dagster_dev, free_port, pipeline_env
from stx_pipeline.operations.window import last_complete_day
from stx_pipeline.simulator import FaultConfig

pytestmark = pytest.mark.slow


def stored(env: dict[str, str], days: list[dt.date]) -> dict[dt.date, int]:
    with duckdb.connect(env["STX_DUCKDB_PATH"], read_only=True) as conn:
        rows = dict(
            conn.execute(
                "SELECT partition_date, count(*) FROM stx_transactions "
                "WHERE partition_date >= ? AND partition_date <= ? GROUP BY 1",
                [days[0], days[-1]],
            ).fetchall()
        )
    return {d: rows.get(d, 0) for d in days}


def window(last: dt.date, n: int) -> list[dt.date]:
    return [last - dt.timedelta(days=i) for i in range(n - 1, -1, -1)]


def test_backfill_wait_status_and_retry_of_a_failed_day(tmp_path, simulator, small_chain):
    env = pipeline_env(tmp_path, simulator.url)
    yesterday = last_complete_day()
    last5 = window(yesterday, 5)
    with dagster_dev(tmp_path, env) as ui:
        env["STX_UI_URL"] = ui

        # 1. Five days through a real partition backfill, followed to the end.
        result = cli(["backfill", "--days", "5", "--wait"], env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Launched backfill" in result.stdout and f"{ui}/runs/b/" in result.stdout
        assert stored(env, last5) == {d: small_chain.day_total(d) for d in last5}

        # 2. Status: complete for 5 days, incomplete for 10; JSON for machines.
        status5 = cli(["status", "--target-days", "5", "--json"], env)
        assert status5.returncode == 0, status5.stdout + status5.stderr
        report = json.loads(status5.stdout)
        assert report["total_transactions"] == sum(small_chain.day_total(d) for d in last5)
        assert report["days_covered"] == 5 and report["instance_source"] == "webserver"
        assert report["days_materialized"] == 5
        assert report["latest_backfill"]["status"] in ("COMPLETED_SUCCESS", "COMPLETED")
        status10 = cli(["status", "--target-days", "10"], env)
        assert status10.returncode == 2
        older = window(yesterday - dt.timedelta(days=5), 5)
        assert f"{older[0]}..{older[-1]}" in status10.stdout

        # 3. A day the API keeps failing is reported; once the fault clears only that day is requested.
        bad = older[2]
        requests.post(f"{simulator.url}/_sim/faults", json={"fail_days": [bad.isoformat()]}, timeout=5)
        failed = cli(["backfill", "--start", str(older[0]), "--end", str(older[-1]), "--wait"], env)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "Failed days (1)" in failed.stdout and bad.isoformat() in failed.stdout
        assert stored(env, older) == {d: (0 if d == bad else small_chain.day_total(d)) for d in older}

        requests.post(f"{simulator.url}/_sim/faults", json={}, timeout=5)
        retry = cli(["backfill", "--days", "10", "--wait"], env)
        assert retry.returncode == 0, retry.stdout + retry.stderr
        assert f"1 to fetch ({bad})" in retry.stdout
        assert stored(env, window(yesterday, 10)) == {d: small_chain.day_total(d) for d in window(yesterday, 10)}

        # 4. Nothing left: a further backfill requests nothing.
        again = cli(["backfill", "--days", "10"], env)
        assert again.returncode == 0 and "Nothing to do" in again.stdout
        nothing = cli(["cancel"], env)
        assert nothing.returncode == 0 and "No running backfill" in nothing.stdout


def test_in_process_backfill_records_days_in_the_instance(tmp_path, simulator, small_chain):
    env = pipeline_env(tmp_path, simulator.url, STX_UI_URL=f"http://127.0.0.1:{free_port()}", STX_DAYS_PER_RUN="2")
    days = window(last_complete_day(), 3)
    result = cli(["backfill", "--days", "3", "--in-process"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(env, days) == {d: small_chain.day_total(d) for d in days}
    status = cli(["status", "--target-days", "3", "--json", "--instance"], env)
    report = json.loads(status.stdout)
    assert status.returncode == 0, status.stdout
    assert report["instance_source"] == "instance" and report["days_materialized"] == 3
    # The second time around nothing is missing.
    again = cli(["backfill", "--days", "3", "--in-process"], env)
    assert again.returncode == 0 and "Nothing to do" in again.stdout
    # A bad day fails alone, also in a 2-day batch: only it is reported, and only it is fetched next time.
    older = window(days[0] - dt.timedelta(days=1), 4)
    simulator.faults = FaultConfig(fail_days=[older[1].isoformat()])
    failed = cli(["backfill", "--start", str(older[0]), "--end", str(older[-1]), "--in-process"], env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"Failed days (1): {older[1]}" in failed.stdout
    simulator.faults = FaultConfig()
    retry = cli(["backfill", "--start", str(older[0]), "--end", str(older[-1]), "--in-process"], env)
    assert retry.returncode == 0 and f"1 to fetch ({older[1]})" in retry.stdout


def test_without_a_webserver_the_cli_says_so_at_once(tmp_path, simulator):
    env = pipeline_env(tmp_path, simulator.url, STX_UI_URL=f"http://127.0.0.1:{free_port()}")
    result = cli(["backfill", "--days", "3", "--wait"], env, timeout=60)
    assert result.returncode == 1
    assert "No Dagster webserver" in result.stdout and "make up" in result.stdout


SENSOR_RUNS = """
query {
  runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: "daily_topup"}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


def test_a_real_daemon_tick_of_daily_topup_launches_the_runs(tmp_path, simulator, small_chain):
    env = pipeline_env(tmp_path, simulator.url, STX_DAILY_TOPUP="on", STX_TARGET_DAYS="2", STX_TOPUP_DELAY_HOURS="0")
    days = window(last_complete_day(), 2)
    with dagster_dev(tmp_path, env) as ui:
        deadline = time.monotonic() + 240
        runs: list[dict] = []
        while time.monotonic() < deadline:
            data = requests.post(f"{ui}/graphql", json={"query": SENSOR_RUNS}, timeout=10).json()
            runs = data["data"]["runsOrError"]["results"]
            if len(runs) >= 2 and all(r["status"] in ("SUCCESS", "FAILURE") for r in runs):
                break
            time.sleep(3)
        reasons = sorted(next(t["value"] for t in r["tags"] if t["key"] == "stx-pipeline/topup-reason") for r in runs)
        assert reasons == ["final", "missing"], runs
        assert all(r["status"] == "SUCCESS" for r in runs), runs
    assert stored(env, days) == {d: small_chain.day_total(d) for d in days}


FAILED_RUNS = """
query { runsOrError(filter: {statuses: [FAILURE]}) { ... on Runs { results { runId } } } }
"""


def test_concurrent_readers_during_a_30_day_daemon_backfill(tmp_path, simulator, small_chain):
    """Runs queued 4 at a time through the daemon while status and a dashboard rebuild read the same file."""
    env = pipeline_env(tmp_path, simulator.url, STX_DAYS_PER_RUN="2")
    simulator.faults = FaultConfig(latency_ms=15)  # long enough for the readers to overlap the writes
    config = Path(env["DAGSTER_HOME"]) / "dagster.yaml"
    assert "max_concurrent_runs: 4" in config.read_text()
    thirty = window(last_complete_day(), 30)
    with dagster_dev(tmp_path, env) as ui:
        env["STX_UI_URL"] = ui
        launched = cli(["backfill", "--days", "30"], env)
        assert launched.returncode == 0, launched.stdout + launched.stderr
        deadline = time.monotonic() + 180
        while not Path(env["STX_DUCKDB_PATH"]).exists() and time.monotonic() < deadline:
            time.sleep(1)  # the backfill daemon's loop starts the first run within ~30 s
        statuses = []
        for _ in range(20):
            statuses.append(cli(["status", "--target-days", "30"], env, timeout=120))
            time.sleep(1)
        rebuilt = cli(["dashboard"], env, timeout=120)
        follow = cli(["backfill", "--days", "30", "--wait"], env)  # nothing new to launch: follows nothing
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            report = json.loads(cli(["status", "--target-days", "30", "--json"], env, timeout=120).stdout)
            if report["days_materialized"] == 30 or report["days_failed"]:
                break
            time.sleep(5)
        failed_runs = requests.post(f"{ui}/graphql", json={"query": FAILED_RUNS}, timeout=10).json()
    assert all(s.returncode in (0, 2) for s in statuses), [s.stdout + s.stderr for s in statuses if s.returncode == 1]
    assert not any("lock" in (s.stdout + s.stderr).lower() for s in statuses)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert follow.returncode == 0, follow.stdout
    assert report["days_materialized"] == 30 and not report["days_failed"], report
    assert failed_runs["data"]["runsOrError"]["results"] == []
    assert stored(env, thirty) == {d: small_chain.day_total(d) for d in thirty}
