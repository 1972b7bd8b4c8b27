"""Dagster resources: the Hiro API client configuration and the DuckDB writer connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from stx_pipeline.hiro import HiroClient
from stx_pipeline.hiro.client import Logger
from stx_pipeline.hiro.strategy import DayFetcher
from stx_pipeline.settings import Settings
from stx_pipeline.storage import StorageError, check_database_path, is_lock_error
from stx_pipeline.storage.backend import open_storage


class HiroApiResource(dg.ConfigurableResource):
    """Where and how fast to call the Hiro API. The key comes from an EnvVar and is never shown."""

    base_url: str = Field(default="https://api.hiro.so", description="STX_API_URL")
    api_key: str | None = Field(default=None, description="HIRO_API_KEY, sent as x-api-key")
    requests_per_minute: float | None = Field(
        default=None,
        description="Own request budget per minute (None or 0: none). The pace is the lower of it and the limit the "
        "API advertises; until the first answer, Hiro's documented 50/min without a key, 500/min with one",
    )
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_attempts: int = Field(default=8, description="Attempts per request on transient failures")
    page_workers: int = Field(default=4, description="Pages of one day fetched concurrently (within budget)")
    strategy: str = Field(default="auto", description="STX_API_STRATEGY: v1, v3, or auto (v1 until it answers 410)")

    def client(self, logger: Logger | None = None) -> HiroClient:
        return HiroClient(
            self.base_url,
            api_key=self.api_key or None,
            requests_per_minute=self.requests_per_minute,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_attempts=self.max_attempts,
            logger=logger,
            pool_size=max(4, self.page_workers * 2),
        )

    def day_fetcher(self, client: HiroClient, logger: Logger | None = None) -> DayFetcher:
        """Lists days with the configured strategy; one per run, so an `auto` switch to v3 lasts the run."""
        return DayFetcher(client, self.strategy, page_workers=self.page_workers, logger=logger)


@contextmanager
def write_connection(resource: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection that is closed even when the write fails.

    STX_STORAGE picks the backend (stx_pipeline.storage.backend): the DuckDB file through this DuckDBResource
    (it retries the file lock on open), or the DuckLake lake, where the resource is not used.
    """
    with ExitStack() as stack:
        kind = None
        try:
            storage = open_storage(resource.database, resource)
            kind = storage.kind
            if kind == "duckdb":
                check_database_path(resource.database)
            conn = stack.enter_context(storage.write_connection())
            # One thread for a day's insert: a second one speeds it little and doubles DuckDB's buffers.
            conn.execute("SET threads = 1")
        except (StorageError, duckdb.Error, OSError) as exc:
            # The run's error message (not a stack trace); the file is never touched.
            message = _open_error(resource.database, exc) if kind == "duckdb" else str(exc)
            raise dg.Failure(description=message, allow_retries=False) from exc
        yield conn


def check_writable(resource: DuckDBResource) -> None:
    """Before any fetch: fail the run at once when STX_DUCKDB_PATH cannot hold the database (a directory, a
    path under a file, a read-only directory, a foreign file), instead of after a day's fetch and ~100 s of
    DuckDBResource's open retries. A file locked by another process is not checked here: that one is waited for.
    """
    try:
        kind = open_storage(resource.database, resource).kind
    except StorageError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if kind != "duckdb":
        return  # the lake is checked when the first day is written
    try:
        check_database_path(resource.database)
    except StorageError as exc:
        raise dg.Failure(description=_open_error(resource.database, exc), allow_retries=False) from exc


def _open_error(path: str, exc: BaseException) -> str:
    parent = Path(path).parent
    if isinstance(exc, StorageError):
        text = str(exc)
    elif parent.exists() and not parent.is_dir():
        text = f"cannot create {path}: {parent} is a file, not a directory"
    elif is_lock_error(exc):
        return (
            f"cannot write to {path}: another process holds it ({exc}). Stop the process that keeps the file "
            "open (a stray `duckdb` shell or notebook), then re-run the failed days."
        )
    else:
        text = f"cannot open {path} for writing: {exc}"
    return (
        f"{text}. Nothing was written; a file already there is left as it is. Check STX_DUCKDB_PATH: restore "
        "the file from a backup or move it aside (a new one is then created), and make sure its directory is "
        "writable; then re-run the failed days."
    )


def resources_from_env(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location, configured from the environment."""
    # EnvVar keeps the key out of the UI's config view and run records; only set when present,
    # since an EnvVar whose variable is unset fails the load.
    api_key = dg.EnvVar("HIRO_API_KEY") if os.environ.get("HIRO_API_KEY") else None
    return {
        "hiro": HiroApiResource(
            base_url=settings.api_url,
            api_key=api_key,
            requests_per_minute=settings.requests_per_minute,
            strategy=settings.api_strategy,
        ),
        "duckdb": DuckDBResource(database=settings.duckdb_path),
    }
