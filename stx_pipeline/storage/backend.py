"""The one place that opens the transaction history: the embedded DuckDB file or a DuckLake lake.

    kind "duckdb"    (default) one file, STX_DUCKDB_PATH; one writer process at a time.
    kind "ducklake"  a DuckLake lake: catalog in PostgreSQL (STX_DUCKLAKE_CATALOG), Parquet data files under
                     STX_DUCKLAKE_DATA_PATH; many concurrent writers, conflicts retried by `replace_day`.

Which one is the caller's to say (`open_storage(kind, ...)`, from the settings' STX_STORAGE): nothing here reads
the environment, and a plain path always means that DuckDB file (`as_storage`). In a run the choice comes from
the code location's `StorageResource` (stx_pipeline.resources), in the CLI from `Settings.storage_backend()`.

Both hand out plain DuckDB connections on which the table is simply `stx_transactions` (DuckLake: `USE lake`),
so every SQL function of duckdb_store (replace_day, day_counts, ...) and the dashboard run unchanged.

No Dagster import here (status must stay fast); the DuckDB backend never loads an extension. DuckLake's
extensions come from the pip packages duckdb-extension-ducklake / duckdb-extension-postgres-scanner and are
LOADed by file path: with auto-install and auto-load off nothing is ever downloaded at run time, and a missing
package is an error naming it instead of a network timeout.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import tenacity

from stx_pipeline.storage.duckdb_store import (
    READ_LOCK_TIMEOUT_S,
    WRITE_CONFLICT_TIMEOUT_S,
    NothingStoredError,
    StorageError,
    connect_read_only,
)

LAKE_ALIAS = "lake"
# (extension, pip package, import name)
DUCKLAKE_EXTENSION = ("ducklake", "duckdb-extension-ducklake", "duckdb_extension_ducklake")
POSTGRES_EXTENSION = ("postgres_scanner", "duckdb-extension-postgres-scanner", "duckdb_extension_postgres_scanner")
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


class Storage(Protocol):
    """What writers and readers need; `kind` is "duckdb" or "ducklake"."""

    kind: str
    # How long a write retries commit conflicts with concurrent writers (DuckLake); see replace_day.
    write_conflict_timeout_s: float

    def describe(self) -> str:
        """Where the history is, for messages and `status`."""
        ...

    def exists(self) -> bool:
        """False when nothing could have been stored yet (no DuckDB file); a lake is checked on connect."""
        ...

    def write_connection(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A short-lived read-write connection, closed even when the write fails."""
        ...

    def read_connection(self, timeout_s: float | None = None) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A read-only connection that waits through writers (DuckDB file lock) and always closes."""
        ...


@dataclass(frozen=True)
class DuckDBFileStorage:
    path: str
    # dagster_duckdb.DuckDBResource when called from an asset (it retries the lock on open); None: duckdb.connect.
    resource: Any = field(default=None, compare=False)
    lock_timeout_s: float = READ_LOCK_TIMEOUT_S  # readers wait this long for a writer's lock
    write_conflict_timeout_s: float = WRITE_CONFLICT_TIMEOUT_S
    kind: str = "duckdb"

    def describe(self) -> str:
        return self.path

    def exists(self) -> bool:
        return Path(self.path).exists()

    @contextmanager
    def write_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if self.resource is not None:
            # DuckDBResource does not close in a `finally`; closing twice is harmless, so close here as well.
            with self.resource.get_connection() as conn:
                try:
                    yield conn
                finally:
                    conn.close()
            return
        conn = duckdb.connect(self.path)
        try:
            yield conn
        finally:
            conn.close()

    def read_connection(self, timeout_s: float | None = None) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return connect_read_only(self.path, self.lock_timeout_s if timeout_s is None else timeout_s)


def extension_file(extension: tuple[str, str, str]) -> Path:
    """The .duckdb_extension file a pip package ships for the installed duckdb version."""
    name, package, module = extension
    version = duckdb.__version__
    install = f"install it: uv add '{package}=={version}' (or pip install '{package}=={version}')"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise StorageError(f"STX_STORAGE=ducklake needs the DuckDB extension {name!r} from {package}: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise StorageError(f"{package} has no {name} extension for duckdb {version} ({path} missing): {install}")
    return path


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_local(path: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path) is None


@dataclass(frozen=True)
class DuckLakeStorage:
    catalog: str  # "postgres:dbname=... host=..." or a DuckDB catalog file path; a leading "ducklake:" is optional
    data_path: str
    write_conflict_timeout_s: float = WRITE_CONFLICT_TIMEOUT_S
    kind: str = "ducklake"

    @property
    def attach_target(self) -> str:
        return self.catalog if self.catalog.startswith("ducklake:") else f"ducklake:{self.catalog}"

    @property
    def resolved_data_path(self) -> str:
        # Absolute, with a trailing slash: the catalog records it on first attach, and a relative path would
        # otherwise depend on each process's working directory. Object-store URLs are kept as given.
        path = str(Path(self.data_path).resolve()) if _is_local(self.data_path) else self.data_path
        return path.rstrip("/") + "/"

    def describe(self) -> str:
        # The catalog string may carry a password: never print one.
        catalog = re.sub(r"password=\S+", "password=***", self.attach_target)
        return f"{catalog} (data {self.resolved_data_path})"

    def exists(self) -> bool:
        return True

    def connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the extensions loaded and the lake attached as `lake` and in use."""
        needed = [DUCKLAKE_EXTENSION]
        if self.attach_target.startswith("ducklake:postgres:"):
            needed.append(POSTGRES_EXTENSION)
        files = [extension_file(ext) for ext in needed]  # before connecting: a missing package names itself
        data_path = self.resolved_data_path
        if not read_only and _is_local(data_path):
            Path(data_path).mkdir(parents=True, exist_ok=True)
        options = f"DATA_PATH {_quote(data_path)}" + (", READ_ONLY" if read_only else "")

        def attach() -> duckdb.DuckDBPyConnection:
            conn = duckdb.connect(":memory:", config=NO_DOWNLOADS)
            try:
                for path in files:
                    conn.execute(f"LOAD {_quote(str(path))}")
                conn.execute(f"ATTACH {_quote(self.attach_target)} AS {LAKE_ALIAS} ({options})")
                conn.execute(f"USE {LAKE_ALIAS}")
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            # Writers that start together on a new catalog race to create its tables; the losers see
            # "Failed to initialize DuckLake" and find the tables in place when they try again.
            return tenacity.Retrying(
                retry=tenacity.retry_if_exception(lambda e: "Failed to initialize DuckLake" in str(e)),
                wait=tenacity.wait_random_exponential(multiplier=0.2, max=2.0),
                stop=tenacity.stop_after_delay(60),
                reraise=True,
            )(attach)
        except duckdb.Error as exc:
            if read_only and "does not exist" in str(exc):
                # Readers never create a lake: an empty catalog means nothing was ingested, or a wrong catalog.
                raise NothingStoredError(
                    f"no DuckLake lake at {self.describe()} yet: nothing has been ingested (run a backfill first), "
                    "or STX_DUCKLAKE_CATALOG points elsewhere"
                ) from exc
            raise StorageError(f"cannot open the DuckLake lake {self.describe()}: {exc}") from exc

    @contextmanager
    def write_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = self.connect(read_only=False)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def read_connection(self, timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        # No lock to wait for: DuckLake readers see the last committed snapshot while writers commit.
        conn = self.connect(read_only=True)
        try:
            yield conn
        finally:
            conn.close()


def open_storage(
    kind: str,
    *,
    duckdb_path: str | os.PathLike[str] = "",
    duckdb_resource: Any = None,
    ducklake_catalog: str | None = None,
    ducklake_data_path: str = "data/lake",
    lock_timeout_s: float = READ_LOCK_TIMEOUT_S,
    write_conflict_timeout_s: float = WRITE_CONFLICT_TIMEOUT_S,
) -> Storage:
    """The history of `kind` ("duckdb": the file at `duckdb_path`; "ducklake": the lake of `ducklake_catalog`)."""
    if kind == "duckdb":
        if not str(duckdb_path):
            raise StorageError("the duckdb backend needs a database path (STX_DUCKDB_PATH)")
        return DuckDBFileStorage(str(duckdb_path), duckdb_resource, lock_timeout_s, write_conflict_timeout_s)
    if kind == "ducklake":
        if not ducklake_catalog:
            raise StorageError("the ducklake backend needs a catalog (STX_DUCKLAKE_CATALOG)")
        return DuckLakeStorage(ducklake_catalog, ducklake_data_path, write_conflict_timeout_s)
    raise StorageError(f"unknown storage backend {kind!r} (duckdb or ducklake)")


def as_storage(target: Storage | str | os.PathLike[str]) -> Storage:
    """`target` itself when it is a storage; a path is that DuckDB file (never a lake chosen elsewhere)."""
    if isinstance(target, (str, os.PathLike)):
        return DuckDBFileStorage(str(target))
    return target


__all__ = [
    "LAKE_ALIAS",
    "DuckDBFileStorage",
    "DuckLakeStorage",
    "Storage",
    "as_storage",
    "extension_file",
    "open_storage",
]
