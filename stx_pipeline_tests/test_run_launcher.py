"""LocalRunLauncher's worker health check (what Dagster's run monitoring asks) against real processes and a real
instance; the whole crash-and-restart story is test_crash_recovery_e2e.py."""

from __future__ import annotations

import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus

from stx_pipeline.run_launcher import LocalRunLauncher, worker_process_status
from stx_pipeline_tests.conftest import dagster_instance

pytestmark = pytest.mark.slow  # real worker processes


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_a_live_worker_runs_and_a_dead_or_reused_pid_fails(sleeper):
    started_at = time.time()
    assert worker_process_status(sleeper.pid, started_at)[0] == WorkerStatus.RUNNING
    # The same pid, but the event is older than the process: the pid was reused by a newer process.
    status, message = worker_process_status(sleeper.pid, started_at - 60)
    assert status == WorkerStatus.FAILED and "newer process" in message
    sleeper.kill()
    sleeper.wait()
    status, message = worker_process_status(sleeper.pid, started_at)
    assert status == WorkerStatus.FAILED and f"pid {sleeper.pid} no longer exists" in message


@dg.asset
def quick() -> int:
    return 1


def test_the_health_check_reads_the_pid_on_the_runs_start_event():
    """A run executed in this process: its RUN_START carries this pid, so the run counts as running; a run with no
    RUN_START (nothing to judge by) is left alone."""
    launcher = {"module": "stx_pipeline.run_launcher", "class": "LocalRunLauncher"}
    with dagster_instance(overrides={"run_launcher": launcher}) as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        result = dg.materialize([quick], instance=instance)
        run = instance.get_run_by_id(result.run_id)
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.RUNNING and "is running" in health.msg
        never_started = instance.create_run_for_job(
            dg.Definitions(assets=[quick]).resolve_implicit_global_asset_job_def()
        )
        assert instance.run_launcher.check_run_worker_health(never_started).status == WorkerStatus.RUNNING
