"""Dagster's local SQLite instance storage, with two changes (dagster.yaml names these classes).

1. Relative `base_dir`s are read against DAGSTER_HOME. Dagster resolves a relative `base_dir` against the current
   directory, and its only alternative is an absolute path or `{env: VAR}`, which cannot add `.dagster/...` to
   DAGSTER_HOME. So `DAGSTER_HOME=<project> stx-pipeline backfill --in-process` run from cron's directory created
   a second, empty instance there and re-fetched stored days. Here `.dagster/storage` means
   `$DAGSTER_HOME/.dagster/storage` from any directory (the rule of `stx_pipeline.settings.anchor`, which the DuckDB
   path and the pages follow too).

2. Fewer disk flushes per event (`SqliteFiles`). Dagster's SQLite storages open a new engine and a new connection
   for every statement (`_connect` in dagster/_core/storage/event_log/sqlite/sqlite_event_log.py, `connect` in
   runs/sqlite/sqlite_run_storage.py and schedules/sqlite/sqlite_schedule_storage.py: `create_engine(...,
   poolclass=NullPool)` each time). Their files are in WAL mode (`_initdb` sets `journal_mode=WAL`), and a WAL
   database whose last connection closes is checkpointed into the main file and its WAL deleted, so the next
   commit starts a new WAL: every event cost three fsyncs (WAL header, checkpoint of the WAL, of the file) —
   ~60 events a run, 15-30 ms each on a busy disk, 1.7-1.9 s a run of a 5-day backfill (docs/BENCHMARKS.md,
   issue 16). Here each file keeps one idle connection open while it is in use, so closing Dagster's connections
   checkpoints nothing, and its connections commit at `synchronous=NORMAL`, which in WAL mode writes the commit to
   the WAL without an fsync. Durability: a commit is in the WAL file (the OS's page cache) when it returns, so a
   killed process (kill -9, out of memory) loses nothing; an OS crash or power cut can lose the last commits,
   never corrupt the file (sqlite.org/pragma.html#pragma_synchronous, "WAL mode ... NORMAL"). The run's events
   then reach the main file at most ~1 s later: a background thread checkpoints each kept file once a second
   (PASSIVE: never blocks a writer), and closes its idle connection after 1 s without use (so a long-lived
   daemon or webserver holds no connection to every run it ever touched). That matters for the UI: it follows
   a running run's log by watching `<run_id>.db` itself for changes (`SqliteEventLogStorageWatchdog`), which a
   commit to the WAL alone does not change.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes.config_class import ConfigurableClassData
from sqlalchemy.pool import NullPool

from stx_pipeline.settings import anchor

# A kept file's commits reach its main file within this (the UI's live run log follows the main file).
CHECKPOINT_EVERY_S = 1.0
# A file not connected to for this long is let go: its last connection closes and checkpoints it.
IDLE_AFTER_S = 1.0


def _anchored(config_value: Mapping[str, Any]) -> dict[str, Any]:
    return {**config_value, "base_dir": anchor(config_value["base_dir"])}


def _sqlite_connected(dbapi_connection: Any, _record: Any) -> None:
    # WAL + NORMAL: a commit is written to the WAL without an fsync; the checkpoint syncs (see the module doc).
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class SqliteFiles:
    """One engine per SQLite file (Dagster's NullPool: still a connection per statement) and, while a file is in
    use, one idle connection to it (the keeper) so that closing the others does not checkpoint it each time."""

    def __init__(self) -> None:
        self._engines: dict[str, sa.Engine] = {}
        self._keepers: dict[str, sqlite3.Connection] = {}
        self._last_use: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def engine(self, conn_string: str) -> sa.Engine:
        with self._lock:
            engine = self._engines.get(conn_string)
            if engine is None:
                engine = sa.create_engine(
                    conn_string, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
                )
                sa.event.listen(engine, "connect", _sqlite_connected)
                self._engines[conn_string] = engine
            return engine

    def keep(self, path: str) -> None:
        """Hold `path` open until it has been idle for IDLE_AFTER_S; creates it (in WAL mode) if new, so Dagster's
        own set-up of a new file (tables, indexes, alembic stamp) runs without an fsync per statement too."""
        with self._lock:
            if self._closed:
                return
            self._last_use[path] = time.monotonic()
            if path in self._keepers:
                return
            keeper = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, check_same_thread=False)
            try:
                keeper.execute("PRAGMA journal_mode=WAL").fetchall()
                keeper.execute("PRAGMA synchronous=NORMAL")
                # A connection holds the WAL open (the lock that stops others' closes from checkpointing) once
                # it has read; reading to the end ends the read, so no snapshot holds checkpoints back.
                keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()
            except sqlite3.Error:
                keeper.close()
                raise
            self._keepers[path] = keeper
            if self._thread is None:
                self._thread = threading.Thread(target=self._checkpoints, name="sqlite-checkpoints", daemon=True)
                self._thread.start()

    @contextmanager
    def connection(self, conn_string: str, path: str) -> Iterator[sa.Connection]:
        """A connection in a transaction, as Dagster's storages open one, with `path` kept open."""
        engine = self.engine(conn_string)
        self.keep(path)
        with engine.connect() as conn, conn.begin():
            yield conn

    def _checkpoints(self) -> None:
        while True:
            time.sleep(CHECKPOINT_EVERY_S)
            with self._lock:
                now = time.monotonic()
                idle = [p for p, t in self._last_use.items() if now - t >= IDLE_AFTER_S and p in self._keepers]
                closing = [self._keepers.pop(p) for p in idle]
                for p in idle:
                    del self._last_use[p]
                busy = list(self._keepers.values())
                done = not self._keepers
                if done:
                    self._thread = None
            for keeper in closing:
                keeper.close()  # now often the last connection: checkpoints and removes the WAL
            for keeper in busy:
                # Nothing new in the WAL: no I/O. Closed by dispose() meanwhile, or busy: the next second tries again.
                with contextlib.suppress(sqlite3.Error):
                    keeper.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            if done:
                return

    def release(self) -> None:
        """Close every kept connection (each file is checkpointed by its last close)."""
        with self._lock:
            keepers = list(self._keepers.values())
            self._keepers.clear()
            self._last_use.clear()
        for keeper in keepers:
            keeper.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.release()


class _EventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log; connections through SqliteFiles, and a new run's shard copied
    from a template.

    Every run gets its own `<run_id>.db`, which Dagster's `_initdb` creates table by table and stamps with
    alembic, loading the migration scripts from disk each time: ~0.25 s of CPU a run (cProfile of in-process
    runs), more than the rest of the run's events together once they no longer wait for fsync. The template is
    that same `_initdb` run once per process on an empty file, and a new shard is a copy of it, put in place
    with a hard link so that a shard another process created meanwhile is never replaced.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._files = SqliteFiles()
        self._template: str | None = None
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        # Dagster's _connect, with the engine and the keeper from SqliteFiles.
        with self._db_lock:
            engine = self._files.engine(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                if not (shard != INDEX_SHARD_NAME and self._place_from_template(shard)):
                    self._files.keep(self.path_for_shard(shard))  # set-up in WAL mode, without an fsync each
                    self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._files.keep(self.path_for_shard(shard))
            with engine.connect() as conn, conn.begin():
                yield conn

    def _place_from_template(self, shard: str) -> bool:
        """Create the run's shard as a copy of the template; False when it exists already (then Dagster's
        `_initdb` checks it, as it would have)."""
        path = self.path_for_shard(shard)
        if os.path.exists(path):
            return False
        if self._template is None:
            folder = tempfile.mkdtemp(prefix="stx-dagster-shard-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            template = os.path.join(folder, "template.db")
            engine = sa.create_engine(f"sqlite:///{template}", poolclass=NullPool)
            self._initdb(engine)  # Dagster's own set-up of a shard: tables, indexes, WAL mode, alembic stamp
            engine.dispose()
            # Its last connection closed: everything is in the main file (no WAL left beside it).
            if os.path.exists(f"{template}-wal"):
                return False
            self._template = template
        # Not named *.db: Dagster lists runs by the *.db files of this folder.
        staging = os.path.join(self._base_dir, f".{shard}.{os.getpid()}.{threading.get_ident()}.staging")
        shutil.copyfile(self._template, staging)
        try:
            os.link(staging, path)  # never replaces a file (os.replace would)
        except FileExistsError:
            return False
        finally:
            os.unlink(staging)
        return True

    def wipe(self) -> None:
        self._files.release()  # no connection to a file that wipe deletes
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._files.close()


class _OneFileConnections:
    """For Dagster's single-file SQLite storages (runs.db, schedules.db): `connect` through SqliteFiles."""

    _conn_string: str

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._files = SqliteFiles()
        super().__init__(conn_string, inst_data)  # type: ignore[call-arg]  # the Dagster storage's own __init__

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self._files.connection(self._conn_string, sa.make_url(self._conn_string).database or "") as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._files.close()


class _RunStorage(_OneFileConnections, SqliteRunStorage):
    """Dagster's SQLite run storage (runs.db); connections through SqliteFiles."""


class _ScheduleStorage(_OneFileConnections, SqliteScheduleStorage):
    """Dagster's SQLite schedule storage (schedules.db: ticks, backfills); connections through SqliteFiles."""


class SqliteStorage(DagsterSqliteStorage):
    """Runs, event log and schedules in SQLite files under `base_dir` (read against DAGSTER_HOME)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # DagsterSqliteStorage.__init__ with the classes above in place of Dagster's three.
        self.base_dir = base_dir
        self._run_storage = _RunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = _EventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = _ScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> DagsterSqliteStorage:  # type: ignore[override]
        return cls.from_local(inst_data=inst_data, **_anchored(config_value))


class ArtifactStorage(LocalArtifactStorage):
    """Local artifacts (and the instance's default folders) under `base_dir`."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> LocalArtifactStorage:  # type: ignore[override]
        return super().from_config_value(inst_data, _anchored(config_value))


class ComputeLogManager(LocalComputeLogManager):
    """Captured stdout/stderr of runs under `base_dir`."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> LocalComputeLogManager:
        return super().from_config_value(inst_data, _anchored(config_value))
