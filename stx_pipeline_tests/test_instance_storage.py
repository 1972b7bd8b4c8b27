"""The instance storage of dagster.yaml (stx_pipeline/instance_storage.py) on real SQLite files: commits without an
fsync each survive a kill -9 of the writer, the UI's live log still sees a run's events, and no connection is left
open once a file is idle."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.sql import check_alembic_revision, get_alembic_config

from stx_pipeline import instance_storage
from stx_pipeline.operations.background import make_dagster_home
from stx_pipeline_tests.children import read_line


def log_entry(run_id: str, message: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None, level=logging.INFO, user_message=message, run_id=run_id, timestamp=time.time()
    )


def rows_in_main_file(db: Path) -> int:
    """Events in the main database file alone, ignoring its WAL (what a crash before any checkpoint would leave
    if commits were not in the WAL file)."""
    try:
        with sqlite3.connect(f"file:{db}?immutable=1", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM event_logs").fetchone()[0])
    except sqlite3.OperationalError:  # not even the table reached the main file yet
        return 0


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def test_the_project_instance_uses_these_storages(tmp_path):
    with DagsterInstance.from_config(str(make_dagster_home(tmp_path / "home"))) as instance:
        assert isinstance(instance.run_storage, instance_storage._RunStorage)
        assert isinstance(instance.event_log_storage, instance_storage._EventLogStorage)
        assert isinstance(instance.schedule_storage, instance_storage._ScheduleStorage)


CHILD = textwrap.dedent(
    """
    import logging, sys, time
    from stx_pipeline import instance_storage
    instance_storage.CHECKPOINT_EVERY_S = 3600  # nothing is checkpointed before the kill: commits only in the WAL
    from dagster import DagsterInstance
    from dagster._core.events.log import EventLogEntry
    from dagster._core.storage.dagster_run import DagsterRun
    home, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    instance = DagsterInstance.from_config(home)
    instance.add_run(DagsterRun(job_name="stx_job", run_id=run_id))
    for i in range(n):
        instance.event_log_storage.store_event(
            EventLogEntry(error_info=None, level=logging.INFO, user_message=f"day {i} written", run_id=run_id,
                          timestamp=time.time())
        )
    print("stored", flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow  # a child process
def test_commits_survive_kill_9_of_the_writer(tmp_path):
    home = make_dagster_home(tmp_path / "home")
    run_id, n = str(uuid.uuid4()), 40
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), run_id, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(child) == "stored"
        (shard,) = home.rglob(f"{run_id}.db")  # the run's shard of the event log
        # The commits are in the WAL only (written, not synced): the main file does not have them.
        assert Path(f"{shard}-wal").stat().st_size > 0
        assert rows_in_main_file(shard) == 0
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run_id) is not None
        assert [e.user_message for e in instance.all_logs(run_id)] == [f"day {i} written" for i in range(n)]


def test_a_watched_run_log_sees_events_and_idle_files_are_let_go(tmp_path):
    """The UI follows a running run's log through SqliteEventLogStorage.watch, which wakes on changes to
    `<run_id>.db` itself: the once-a-second checkpoint must bring the events there."""
    with DagsterInstance.from_config(str(make_dagster_home(tmp_path / "home"))) as instance:
        run_id = str(uuid.uuid4())
        instance.add_run(DagsterRun(job_name="stx_job", run_id=run_id))
        seen: list[str] = []
        instance.event_log_storage.watch(run_id, None, lambda event, cursor: seen.append(event.user_message))
        try:
            for i in range(3):
                instance.event_log_storage.store_event(log_entry(run_id, f"day {i} written"))
            wait_for(lambda: len(seen) == 3, 15, "the watcher to see 3 events")
            assert seen == [f"day {i} written" for i in range(3)]
        finally:
            instance.event_log_storage.end_watch(run_id, seen.append)
        shard = Path(instance.event_log_storage.path_for_shard(run_id))
        # Idle for a second: the kept connection is closed, the WAL checkpointed into the file and removed, as
        # Dagster leaves its files between statements.
        wait_for(lambda: not Path(f"{shard}-wal").exists(), 15, "the run's WAL to be removed")
        assert rows_in_main_file(shard) == 3
        # The shard was copied from the template: Dagster's schema at its head revision, in WAL mode.
        engine = sa.create_engine(f"sqlite:///{shard}")
        with engine.connect() as conn:
            db_revision, head_revision = check_alembic_revision(get_alembic_config(sqlite_event_log.__file__), conn)
            assert db_revision == head_revision and head_revision is not None
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        engine.dispose()
        assert not list(shard.parent.glob("*.staging"))
