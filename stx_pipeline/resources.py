"""Dagster resources: the Hiro API client's configuration and the storage of the history, built from settings."""

from __future__ import annotations

import os
from typing import Literal

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from stx_pipeline.hiro import HiroClient
from stx_pipeline.hiro.client import Logger
from stx_pipeline.hiro.strategy import DayFetcher
from stx_pipeline.settings import Settings
from stx_pipeline.storage import StorageError
from stx_pipeline.storage.backend import Storage, open_storage


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


class StorageResource(dg.ConfigurableResource):
    """Where the transaction history lives (STX_STORAGE): the DuckDB file, opened through dagster-duckdb's
    DuckDBResource (it retries the file lock on open), or a DuckLake lake. The assets and the sensor take it;
    `backend()` is the Dagster-free storage the ingest loop, the dashboard and the CLI use
    (`Settings.storage_backend()` builds the same from the environment)."""

    kind: Literal["duckdb", "ducklake"] = Field(default="duckdb", description="STX_STORAGE: duckdb or ducklake")
    duckdb_path: str = Field(default="data/wallet_metrics.duckdb", description="STX_DUCKDB_PATH (kind duckdb)")
    ducklake_catalog: str | None = Field(
        default=None, description="STX_DUCKLAKE_CATALOG (kind ducklake); an EnvVar, since it may hold a password"
    )
    ducklake_data_path: str = Field(default="data/lake", description="STX_DUCKLAKE_DATA_PATH (kind ducklake)")
    lock_timeout_s: float = Field(default=120.0, description="STX_DUCKDB_LOCK_TIMEOUT_S: readers wait for a writer")
    write_conflict_timeout_s: float = Field(
        default=300.0, description="STX_WRITE_CONFLICT_TIMEOUT_S: DuckLake writers retry commit conflicts"
    )

    def backend(self) -> Storage:
        try:
            return open_storage(
                self.kind,
                duckdb_path=self.duckdb_path,
                duckdb_resource=DuckDBResource(database=self.duckdb_path) if self.kind == "duckdb" else None,
                ducklake_catalog=self.ducklake_catalog,
                ducklake_data_path=self.ducklake_data_path,
                lock_timeout_s=self.lock_timeout_s,
                write_conflict_timeout_s=self.write_conflict_timeout_s,
            )
        except StorageError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageResource:
        # EnvVar keeps a catalog's password out of the UI's config view and run records.
        catalog = dg.EnvVar("STX_DUCKLAKE_CATALOG") if settings.ducklake_catalog else None
        return cls(
            kind=settings.storage,
            duckdb_path=settings.duckdb_path,
            ducklake_catalog=catalog,
            ducklake_data_path=settings.ducklake_data_path,
            lock_timeout_s=settings.duckdb_lock_timeout_s,
            write_conflict_timeout_s=settings.write_conflict_timeout_s,
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
        "storage": StorageResource.from_settings(settings),
    }
