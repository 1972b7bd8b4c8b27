"""Dagster's local instance storage with relative `base_dir`s read against DAGSTER_HOME (dagster.yaml names these).

Dagster resolves a relative `base_dir` against the current directory, and its only alternative is an absolute
path or `{env: VAR}`, which cannot add `.dagster/...` to DAGSTER_HOME. So `DAGSTER_HOME=<project> stx-pipeline
backfill --in-process` run from cron's directory created a second, empty instance there and re-fetched stored
days. These subclasses change only that: `.dagster/storage` means `$DAGSTER_HOME/.dagster/storage` from any
directory (the rule of `stx_pipeline.settings.anchor`, which the DuckDB path and the pages follow too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes.config_class import ConfigurableClassData

from stx_pipeline.settings import anchor


def _anchored(config_value: Mapping[str, Any]) -> dict[str, Any]:
    return {**config_value, "base_dir": anchor(config_value["base_dir"])}


class SqliteStorage(DagsterSqliteStorage):
    """Runs, event log and schedules in SQLite files under `base_dir`."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> DagsterSqliteStorage:  # type: ignore[override]
        return super().from_config_value(inst_data, _anchored(config_value))


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
