"""Dagster resources: the Hiro API client configuration and the DuckDB writer connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from stx_pipeline.hiro import HiroClient
from stx_pipeline.hiro.client import Logger
from stx_pipeline.hiro.strategy import DayFetcher
from stx_pipeline.settings import Settings
from stx_pipeline.storage.backend import open_storage


class HiroApiResource(dg.ConfigurableResource):
    """Where and how fast to call the Hiro API. The key comes from an EnvVar and is never shown."""

    base_url: str = Field(default="https://api.hiro.so", description="STX_API_URL")
    api_key: str | None = Field(default=None, description="HIRO_API_KEY, sent as x-api-key")
    requests_per_minute: float | None = Field(
        default=None, description="Request budget; default 40/min without a key, 400/min with one"
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
    with open_storage(resource.database, resource).write_connection() as conn:
        yield conn


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
