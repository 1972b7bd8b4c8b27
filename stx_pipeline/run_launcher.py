"""The run launcher of `make up` (dagster.yaml): Dagster's DefaultRunLauncher plus the worker health check that
Dagster's run monitoring asks every launcher for.

Why: with the DefaultRunLauncher, run monitoring cannot notice a dead run worker. `monitor_started_run`
(dagster/_daemon/monitoring/run_monitoring.py) calls `check_run_worker_health` only when the launcher sets
`supports_check_run_worker_health`, which DefaultRunLauncher leaves False; a STARTED run is then only checked
against `max_runtime_seconds` (default: no limit). The code server does fail runs whose process died
(`_check_for_orphaned_runs` in dagster/_grpc/server.py), but only the runs it launched itself and holds in
memory: after `kill -9` of `make up` (webserver, daemon, code server and run workers in one process group) the
new code server knows nothing of the old run, so it stays STARTED forever, holding the `hiro_api` pool (a run
holds a pool with `granularity: run` as long as its status is in progress).

The check: the process that executes a run records its pid on the run's RUN_START event (`DagsterEvent.pid`),
for runs launched through the code server and for in-process runs (`stx-pipeline backfill --in-process`,
`dagster asset materialize`) alike. The run is alive while that process exists and is not younger than the
event (a reused pid). Valid only where every process using the instance shares one host, as with the SQLite
instance of `make up`; the multi-host deployments (deploy/) keep Dagster's default launcher.
"""

from __future__ import annotations

import psutil
from dagster import DagsterInstance, DagsterRunStatus, DefaultRunLauncher, RunsFilter
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun

# psutil's create_time comes from clock ticks; the RUN_START event is written after the process exists.
_CLOCK_SLACK_S = 2.0


class LocalRunLauncher(DefaultRunLauncher):
    """Launches runs like DefaultRunLauncher; tells run monitoring whether a run's worker process still lives."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        started = self._instance.event_log_storage.get_logs_for_run(
            run.run_id, of_type=DagsterEventType.RUN_START, limit=1, ascending=False
        )
        if not started or started[0].dagster_event is None or started[0].dagster_event.pid is None:
            # Nothing to judge by: leave the run alone rather than fail a live one.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded")
        pid, started_at = started[0].dagster_event.pid, started[0].timestamp
        return CheckRunHealthResult(*worker_process_status(pid, started_at))

    def get_run_worker_debug_info(self, run: DagsterRun, include_container_logs: bool | None = True) -> str | None:
        # Shown after run monitoring's "Marking run ... as failed": what happened and what to do.
        return (
            "The process running it is gone: it was killed (kill -9, out of memory) or `make up` / the host was "
            "restarted while it ran. Days it had written are in DuckDB; its days are marked failed, and the next "
            "`stx-pipeline backfill` (or the daily top-up) requests them again."
        )


def worker_process_status(pid: int, started_at: float) -> tuple[WorkerStatus, str]:
    try:
        process = psutil.Process(pid)
        created = process.create_time()
        zombie = process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # includes ZombieProcess on some platforms
        return WorkerStatus.FAILED, f"run worker pid {pid} no longer exists"
    except psutil.AccessDenied:
        return WorkerStatus.RUNNING, f"run worker pid {pid} exists (not ours to inspect)"
    if zombie:
        return WorkerStatus.FAILED, f"run worker pid {pid} has exited"
    if created > started_at + _CLOCK_SLACK_S:
        return WorkerStatus.FAILED, f"run worker pid {pid} no longer exists (the pid now belongs to a newer process)"
    return WorkerStatus.RUNNING, f"run worker pid {pid} is running"


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """What the daemon's run monitoring does (`monitor_started_run`: a worker found dead -> `report_run_failed`),
    for `stx-pipeline backfill --in-process`, which plans with no daemon running: without it, a STARTED run whose
    process was killed (kill -9 of an earlier in-process backfill) stays in progress forever, its days are never
    planned again and `--wait` follows it forever. Only with this launcher (one host: the pid check is valid);
    returns one line per run failed."""
    launcher = instance.run_launcher
    if not isinstance(launcher, LocalRunLauncher):
        return []
    failed = []
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        result = launcher.check_run_worker_health(run)
        if result.status == WorkerStatus.FAILED:
            instance.report_run_failed(run, f"Marked failed by stx-pipeline backfill --in-process: {result.msg}.")
            failed.append(f"run {run.run_id[:8]} ({result.msg})")
    return failed
