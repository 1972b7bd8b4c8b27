"""The code location loads, from Python and through Dagster's own CLI, and `dagster asset materialize` works."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from stx_pipeline_tests.conftest import PROJECT_ROOT

DAGSTER = [sys.executable, "-m", "dagster"]


def test_definitions_load_in_python():
    from stx_pipeline.definitions import defs as load

    defs = load()
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "stx_transactions" in keys
    assert defs.resolve_assets_def("stx_transactions").partitions_def is not None


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DAGSTER_HOME": str(tmp_path / "home"), **extra})
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


@pytest.mark.slow  # starts a process: the dagster CLI
def test_dagster_definitions_validate_with_the_workspace(tmp_path):
    result = subprocess.run(
        [*DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "passed validation" in result.stderr + result.stdout


@pytest.mark.slow  # starts a process: the dagster CLI
def test_dagster_asset_materialize_one_partition(tmp_path, simulator, small_chain):
    db = tmp_path / "cli.duckdb"
    day = dt.date(2025, 3, 1)
    result = subprocess.run(
        [
            *DAGSTER,
            "asset",
            "materialize",
            "-m",
            "stx_pipeline.definitions",
            "--select",
            "stx_transactions",
            "--partition",
            day.isoformat(),
        ],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path, STX_API_URL=simulator.url, STX_DUCKDB_PATH=str(db), STX_REQUESTS_PER_MINUTE="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with duckdb.connect(str(db), read_only=True) as conn:
        stored = conn.execute("SELECT count(*) FROM stx_transactions WHERE partition_date = ?", [day]).fetchone()[0]
    assert stored == small_chain.day_total(day)


@pytest.mark.slow  # starts a process: the dagster CLI
def test_a_bad_setting_is_a_load_error_naming_the_variable_not_an_import_error(tmp_path):
    """Importing the module reads no configuration; Dagster's load of the code location (what the UI shows as
    the location's error) fails with the variable, its value and what is wrong, without a traceback into Dagster."""
    env = _env(tmp_path, STX_START_DATE="garbage")
    imported = subprocess.run(
        [sys.executable, "-c", "import stx_pipeline.definitions"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    result = subprocess.run(
        [*DAGSTER, "definitions", "validate", "-m", "stx_pipeline.definitions"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stderr + result.stdout
    assert result.returncode != 0, output[-3000:]
    assert "Validation failed for code location stx_pipeline.definitions" in output
    assert "SettingsError: STX_START_DATE='garbage' is not a date in YYYY-MM-DD form" in output
