"""Every path is anchored at DAGSTER_HOME, whatever the current directory (cron runs the CLI from anywhere)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
import requests

from stx_pipeline.devtools.dagster_env import CLI, free_port
from stx_pipeline.operations.window import last_complete_day
from stx_pipeline.settings import anchor
from stx_pipeline_tests.conftest import PROJECT_ROOT


def test_relative_paths_are_read_against_dagster_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "project"))
    monkeypatch.chdir(tmp_path)
    assert anchor("data/x.duckdb") == str(tmp_path / "project" / "data" / "x.duckdb")
    assert anchor(str(tmp_path / "abs.duckdb")) == str(tmp_path / "abs.duckdb")
    assert anchor("s3://bucket/lake/") == "s3://bucket/lake/"  # object storage stays a URL
    monkeypatch.delenv("DAGSTER_HOME")
    assert anchor("data/x.duckdb") == str(tmp_path / "data" / "x.duckdb")  # no DAGSTER_HOME: the current directory


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


@pytest.mark.slow  # starts a process: the CLI
def test_cron_style_in_process_backfill_from_another_directory_uses_the_project(tmp_path, simulator, small_chain):
    """`DAGSTER_HOME=<project> stx-pipeline backfill --in-process` from elsewhere: the project's .env, one instance
    and one database, all in the project; a second run from another directory finds the day stored and requests
    nothing."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", project / "dagster.yaml")  # as checked in: relative paths
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STX_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(project), "STX_UI_URL": f"http://127.0.0.1:{free_port()}"})  # no webserver
    # The rest of the configuration is in the project's .env, as `make up` users keep it.
    (project / ".env").write_text(
        f"STX_API_URL={simulator.url}\nSTX_REQUESTS_PER_MINUTE=0\nSTX_START_DATE=2024-11-01\nSTX_DAILY_TOPUP=off\n"
    )
    day = last_complete_day()
    window = ["--start", str(day), "--end", str(day)]
    cron_dirs = [tmp_path / "cron1", tmp_path / "cron2"]
    for d in cron_dirs:
        d.mkdir()

    first = run_cli(["backfill", *window, "--in-process"], env, cron_dirs[0])
    assert first.returncode == 0, first.stdout + first.stderr
    fetched = requests.get(f"{simulator.url}/_sim/stats", timeout=5).json()["requests"]
    assert fetched > 0

    second = run_cli(["backfill", *window, "--in-process"], env, cron_dirs[1])
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Nothing to do" in second.stdout, second.stdout
    assert requests.get(f"{simulator.url}/_sim/stats", timeout=5).json()["requests"] == fetched  # not re-fetched

    status = run_cli(["status", "--target-days", "1", "--json", "--instance"], env, cron_dirs[1])
    report = json.loads(status.stdout)
    assert report["instance_source"] == "instance" and report["days_materialized"] == 1, report

    # Nothing was created where the commands ran; everything is in the project, the instance under .dagster/.
    assert [list(d.iterdir()) for d in cron_dirs] == [[], []]
    assert sorted(p.name for p in project.iterdir()) == [".dagster", ".env", "dagster.yaml", "data"]
    assert (project / ".dagster" / "storage" / "history" / "runs.db").exists()
    with duckdb.connect(str(project / "data" / "wallet_metrics.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM stx_transactions WHERE partition_date = ?", [day]).fetchone()[0]
    assert rows == small_chain.day_total(dt.date.fromisoformat(str(day)))
