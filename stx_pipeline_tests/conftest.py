"""Shared fixtures: the API simulator on a free 127.0.0.1 port, a DuckDB file, a process holding its lock.

Helpers the benchmarks share too (resources pointed at the simulator, `dagster dev`, PostgreSQL) live in
stx_pipeline.devtools."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain

# Tests never reach the internet: anything that forgets to point at the simulator fails fast.
os.environ.setdefault("STX_API_URL", "http://127.0.0.1:9")
os.environ.setdefault("STX_START_DATE", "2024-11-01")

# A test that starts a process must be marked slow: checked while the tests run (tiers.py).
pytest_plugins = ("stx_pipeline_tests.tiers",)

if TYPE_CHECKING:
    import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMALL_DAY_TXS = 400  # small days keep the suite fast; paging still spans several pages per day


@pytest.fixture(scope="session")
def small_chain() -> SyntheticChain:
    return SyntheticChain(ChainConfig(seed=11, txs_per_day=SMALL_DAY_TXS))


@pytest.fixture
def simulator(small_chain: SyntheticChain) -> Iterator[SimulatorServer]:
    with SimulatorServer(small_chain, FaultConfig()) as sim:
        yield sim


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "wallet_metrics.duckdb"


def days(first: str, n: int) -> list[dt.date]:
    start = dt.date.fromisoformat(first)
    return [start + dt.timedelta(days=i) for i in range(n)]


def failure_message(result) -> str:
    """Every message of the failed step's error chain (the Failure and what caused it)."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error, messages = event.step_failure_data.error, []
            while error is not None:
                messages.append(error.message)
                error = error.cause
            return "\n".join(messages)
    raise AssertionError("the run did not fail")


@contextmanager
def lock_held_by_another_process(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process opens `db` read-write (DuckDB's file lock) for `seconds`; yields once it holds it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "time.sleep(float(sys.argv[2]))",
            str(db),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=10)


_INSTANCE_TEMPLATE: Path | None = None


@contextmanager
def dagster_instance(
    directory: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Iterator[dg.DagsterInstance]:
    """`dg.instance_for_test` on a copy of an instance directory initialized once per test process: the same real
    SQLite storage on disk, without re-creating its schemas (~2 s a test on a 2-core machine, 0.3 s copied)."""
    import dagster as dg

    global _INSTANCE_TEMPLATE
    if _INSTANCE_TEMPLATE is None:
        template = Path(tempfile.mkdtemp(prefix="stx-dagster-template-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        with dg.instance_for_test(temp_dir=str(template)):
            pass
        _INSTANCE_TEMPLATE = template
    with tempfile.TemporaryDirectory(prefix="stx-dagster-") as scratch:
        target = directory if directory is not None else Path(scratch) / "instance"
        shutil.copytree(_INSTANCE_TEMPLATE, target, dirs_exist_ok=True)
        with dg.instance_for_test(temp_dir=str(target), overrides=dict(overrides) if overrides else None) as instance:
            yield instance
