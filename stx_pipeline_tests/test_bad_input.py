"""Bad input through the real CLI: what the user sees, and that nothing already stored is lost.

Real simulator over HTTP on 127.0.0.1, real DuckDB files, `stx-pipeline` in subprocesses (docs/RELIABILITY.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from stx_pipeline.devtools.dagster_env import cli, free_port, pipeline_env
from stx_pipeline.operations.window import last_complete_day
from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain
from stx_pipeline.storage import day_content_hash, day_counts
from stx_pipeline_tests.conftest import SMALL_DAY_TXS

# Every test runs the stx-pipeline CLI in a subprocess, as a user would.
pytestmark = pytest.mark.slow

START = os.environ["STX_START_DATE"]  # conftest: 2024-11-01
DAY = dt.date(2025, 3, 1)
PLANTED_KEY = "hiro-planted-key-bad-input-41c9"


def env_for(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    # No webserver on this port; wide columns so rich does not wrap the messages under test.
    return pipeline_env(tmp_path, url, STX_UI_URL=f"http://127.0.0.1:{free_port()}", COLUMNS="400", **extra)


def text(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + "\n" + result.stderr).split())


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def day_hashes(db: Path, days: list[dt.date]) -> dict[dt.date, str]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {d: day_content_hash(conn, d) for d in days}


def store_day(env: dict[str, str], day: dt.date) -> None:
    result = cli(["backfill", "--start", str(day), "--end", str(day), "--in-process"], env)
    assert result.returncode == 0, text(result)


def test_an_empty_day_is_stored_as_zero_rows_and_stays_listed_as_missing(tmp_path):
    """A day the API lists with total 0 succeeds with 0 rows; status and the planner keep showing it.

    On mainnet every Stacks block carries a coinbase, so a day of nothing means the API answered wrongly:
    it stays visible (`status` exit 2, asked again by the next backfill: one request) instead of passing as done.
    """
    yesterday = last_complete_day()
    empty = [yesterday - dt.timedelta(days=2), yesterday - dt.timedelta(days=1)]
    chain = SyntheticChain(ChainConfig(seed=11, txs_per_day=SMALL_DAY_TXS, genesis=yesterday))
    with SimulatorServer(chain, FaultConfig()) as sim:
        env = env_for(tmp_path, sim.url)
        first = cli(["backfill", "--days", "3", "--in-process"], env)
        assert first.returncode == 0, text(first)
        assert "All 3 days succeeded." in first.stdout
        with duckdb.connect(env["STX_DUCKDB_PATH"], read_only=True) as conn:
            assert day_counts(conn, [*empty, yesterday]) == {
                empty[0]: 0,
                empty[1]: 0,
                yesterday: chain.day_total(yesterday),
            }
        status = cli(["status", "--days", "3", "--no-instance"], env)
        assert status.returncode == 2, text(status)
        assert f"Not in DuckDB: {empty[0]}..{empty[1]}" in text(status)
        again = cli(["backfill", "--days", "3", "--in-process"], env)
        assert again.returncode == 0, text(again)
        assert f"2 to fetch ({empty[0]}..{empty[1]})" in again.stdout
        assert day_hashes(Path(env["STX_DUCKDB_PATH"]), [yesterday])[yesterday] != hashlib.md5(b"").hexdigest()


def test_malformed_json_at_every_attempt_fails_the_day_clearly_and_keeps_it(tmp_path, simulator):
    env = env_for(tmp_path, simulator.url)
    db = Path(env["STX_DUCKDB_PATH"])
    store_day(env, DAY)
    before = day_hashes(db, [DAY])
    simulator.faults = FaultConfig(malformed_json_rate=1.0)
    result = cli(["backfill", "--start", str(DAY), "--end", str(DAY), "--force", "--in-process"], env)
    assert result.returncode == 1, text(result)
    out = text(result)
    assert "still failing after 8 attempts: unparsable JSON body" in out
    assert f"Failed days (1): {DAY}" in out
    assert day_hashes(db, [DAY]) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["backfill", "--days", "0", "--in-process"], "--days must be a positive number of days, got 0"),
        (["backfill", "--days", "-3", "--in-process"], "--days must be a positive number of days, got -3"),
        (
            ["backfill", "--start", "2024-10-31", "--in-process"],
            f"2024-10-31 is before the first partition {START} (STX_START_DATE)",
        ),
        (
            ["backfill", "--start", START, "--end", "2099-01-01", "--in-process"],
            "2099-01-01 is not a complete UTC day yet; the newest partition is",
        ),
        (["backfill", "--start", "2025-03-05", "--end", "2025-03-01"], "the window ends (2025-03-01) before it starts"),
        (["status", "--target-days", "0"], "--target-days must be a positive number of days, got 0"),
        (["status", "--target-days", "-3"], "--target-days must be a positive number of days, got -3"),
        # One validation for both commands: a window reaching before STX_START_DATE is refused, naming the limit.
        (
            ["backfill", "--days", "100000", "--in-process"],
            f"--days 100000 reaches back before the first partition {START} (STX_START_DATE): at most "
            f"{(last_complete_day() - dt.date.fromisoformat(START)).days + 1} days fit",
        ),
        (
            ["status", "--target-days", "100000"],
            f"--target-days 100000 reaches back before the first partition {START} (STX_START_DATE): at most "
            f"{(last_complete_day() - dt.date.fromisoformat(START)).days + 1} days fit",
        ),
    ],
)
def test_bad_windows_are_usage_errors_naming_the_value(tmp_path, args, needle):
    env = env_for(tmp_path, "http://127.0.0.1:9")
    result = cli(args, env, timeout=60)
    assert result.returncode == 2, text(result)
    assert needle in text(result)
    assert not Path(env["STX_DUCKDB_PATH"]).exists()  # nothing was started


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("STX_START_DATE", "garbage", "STX_START_DATE='garbage' is not a date in YYYY-MM-DD form"),
        ("STX_START_DATE", "2019-06-01", "STX_START_DATE=2019-06-01 is before Stacks 2.0 mainnet (2021-01-14)"),
        ("STX_START_DATE", "2999-01-01", "STX_START_DATE=2999-01-01 is not in the past"),
        ("STX_REQUESTS_PER_MINUTE", "-1", "STX_REQUESTS_PER_MINUTE=-1.0 must be at least 0"),
        ("STX_REQUESTS_PER_MINUTE", "fast", "STX_REQUESTS_PER_MINUTE='fast' is not a number"),
        ("STX_STORAGE", "bogus", "STX_STORAGE='bogus' must be one of duckdb, ducklake"),
        ("STX_STORAGE", "ducklake", "STX_STORAGE=ducklake needs STX_DUCKLAKE_CATALOG"),
        ("STX_API_STRATEGY", "bogus", "STX_API_STRATEGY='bogus' must be one of v1, v3, auto"),
        ("STX_API_URL", "ftp://example", "STX_API_URL='ftp://example' must start with http:// or https://"),
        ("STX_DAYS_PER_RUN", "0", "STX_DAYS_PER_RUN=0 must be at least 1"),
        ("STX_TARGET_DAYS", "abc", "STX_TARGET_DAYS='abc' is not a whole number"),
    ],
)
@pytest.mark.parametrize("command", [["status", "--no-instance"], ["backfill", "--days", "2", "--in-process"]])
def test_bad_environment_values_name_the_variable(tmp_path, command, variable, value, needle):
    env = env_for(tmp_path, "http://127.0.0.1:9", **{variable: value})
    env.pop("STX_DUCKLAKE_CATALOG", None)
    result = cli(command, env, timeout=60)
    assert result.returncode == 2, text(result)
    assert f"Error: bad environment: {needle}" in text(result)
    assert "Traceback" not in result.stderr


def test_a_corrupt_database_file_is_reported_and_left_untouched(tmp_path, simulator):
    env = env_for(tmp_path, simulator.url)
    db = Path(env["STX_DUCKDB_PATH"])
    db.parent.mkdir(parents=True)
    db.write_bytes(b"PK\x03\x04 this is a zip, not a database " * 300)
    sha = file_sha(db)

    # The plan cannot tell what is stored, so nothing is launched (and no request is made).
    writer = cli(["backfill", "--start", str(DAY), "--end", str(DAY), "--in-process"], env, timeout=120)
    assert writer.returncode == 1, text(writer)
    out = text(writer)
    assert f"Cannot plan: cannot open {db}" in out and "not a valid DuckDB database file" in out
    assert "Nothing was launched" in out and "Fix STX_DUCKDB_PATH" in out
    assert simulator.stats()["requests"] == 0

    status = cli(["status", "--no-instance"], env, timeout=60)
    assert status.returncode == 1, text(status)
    assert f"Error: cannot open {db}" in text(status) and "not a valid DuckDB database file" in text(status)
    assert "Status: error" in text(status)

    dashboard = cli(["dashboard"], env, timeout=60)
    assert dashboard.returncode == 1, text(dashboard)
    assert f"Dashboard not built: cannot open {db}" in text(dashboard)

    assert file_sha(db) == sha  # neither overwritten nor deleted
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]  # no WAL or sidecar either


def test_a_data_path_under_a_regular_file_fails_clearly(tmp_path, simulator):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be\n")
    env = env_for(tmp_path, simulator.url, STX_DUCKDB_PATH=str(blocker / "wallet_metrics.duckdb"))
    result = cli(["backfill", "--start", str(DAY), "--end", str(DAY), "--in-process"], env)
    assert result.returncode == 1, text(result)
    assert f"cannot create {blocker / 'wallet_metrics.duckdb'}: {blocker} is a file, not a directory" in text(result)
    assert blocker.read_text() == "a file where the data directory should be\n"


@contextmanager
def read_only_directory(path: Path) -> Iterator[None]:
    """chmod 0o555, or for root (whom permissions do not stop) the immutable attribute; skip if neither works."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root, where chmod does not stop writes, and `chattr +i` is not available")
    try:
        if os.access(path, os.W_OK):
            pytest.skip("the directory is still writable after chattr +i")
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_read_only_data_directory_fails_clearly_and_keeps_the_history(tmp_path, simulator):
    env = env_for(tmp_path, simulator.url)
    db = Path(env["STX_DUCKDB_PATH"])
    store_day(env, DAY)
    before, sha = day_hashes(db, [DAY]), file_sha(db)
    with read_only_directory(db.parent):
        result = cli(["backfill", "--start", str(DAY), "--end", str(DAY), "--force", "--in-process"], env, timeout=120)
        status = cli(["status", "--days", "1", "--no-instance"], env, timeout=60)
    assert result.returncode == 1, text(result)
    assert f"{db} or its directory is read-only. Nothing was written" in text(result)
    assert file_sha(db) == sha and day_hashes(db, [DAY]) == before
    # Readers still read a read-only history.
    assert status.returncode == 2, text(status)  # the last day is not stored: incomplete, but no error
    assert "Error:" not in status.stdout


def test_a_wrong_api_key_stops_the_backfill_with_401_and_no_key_in_the_output(tmp_path, small_chain):
    with SimulatorServer(small_chain, FaultConfig(), required_api_key=PLANTED_KEY) as sim:
        env = env_for(tmp_path, sim.url, HIRO_API_KEY="not-the-key-0000")
        result = cli(["backfill", "--start", str(DAY), "--end", str(DAY + dt.timedelta(days=2)), "--in-process"], env)
        requests_made = sim.stats()["requests"]
    assert result.returncode == 1, text(result)
    assert "HTTP 401" in text(result)
    assert "not-the-key-0000" not in result.stdout + result.stderr
    assert requests_made <= 3  # stopped at once, not retried day after day
    assert (
        not Path(env["STX_DUCKDB_PATH"]).exists()
        or day_hashes(Path(env["STX_DUCKDB_PATH"]), [DAY])[DAY] == hashlib.md5(b"").hexdigest()
    )
