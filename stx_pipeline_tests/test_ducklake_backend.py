"""STX_STORAGE=ducklake against a real local PostgreSQL catalog: the same SQL, write conflicts retried, a 30-day
backfill by 8 concurrent writer processes, the readers (status, dashboard, checks), migration both ways."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from stx_pipeline.days import day_window
from stx_pipeline.devtools.dagster_env import cli
from stx_pipeline.devtools.postgres import PostgresServer
from stx_pipeline.hiro import records_to_table
from stx_pipeline.operations.window import last_complete_day
from stx_pipeline.settings import Settings, SettingsError
from stx_pipeline.storage import (
    StorageError,
    day_content_hash,
    day_counts,
    duplicate_tx_ids,
    replace_day,
    stored_days,
)
from stx_pipeline.storage import backend as backend_module
from stx_pipeline.storage.backend import DuckDBFileStorage, DuckLakeStorage, open_storage
from stx_pipeline.storage.duckdb_store import is_write_conflict
from stx_pipeline.storage.migrate import migrate
from stx_pipeline_tests.postgres_server import postgres_server  # noqa: F401 (fixture)

FIRST = dt.date(2024, 12, 1)


def lake_for(server: PostgresServer, root: Path, name: str) -> DuckLakeStorage:
    return DuckLakeStorage(f"postgres:{server.create_database(name)}", str(root / f"{name}-data"))


def day_table(chain, day: dt.date):
    return records_to_table(chain.day_transactions(day), day, window=day_window(day))


def lake_env(lake: DuckLakeStorage) -> dict[str, str]:
    return {"STX_STORAGE": "ducklake", "STX_DUCKLAKE_CATALOG": lake.catalog, "STX_DUCKLAKE_DATA_PATH": lake.data_path}


# --- without a server --------------------------------------------------------------------------------------------


def test_a_missing_extension_package_is_an_error_naming_it(monkeypatch, tmp_path):
    # As if the wheel were not installed (patched on the backend module only).
    monkeypatch.setattr(backend_module, "importlib", SimpleNamespace(util=SimpleNamespace(find_spec=lambda _: None)))
    lake = DuckLakeStorage("postgres:dbname=x host=127.0.0.1 port=9", str(tmp_path))
    with pytest.raises(StorageError, match=r"duckdb-extension-ducklake==1\.5\.5"), lake.write_connection():
        pass


def test_storage_settings_are_validated(monkeypatch):
    monkeypatch.setenv("STX_STORAGE", "ducklake")
    monkeypatch.delenv("STX_DUCKLAKE_CATALOG", raising=False)
    with pytest.raises(SettingsError, match="needs STX_DUCKLAKE_CATALOG"):
        Settings.from_env()
    monkeypatch.setenv("STX_STORAGE", "sqlite")
    with pytest.raises(SettingsError, match="must be one of duckdb, ducklake"):
        Settings.from_env()
    # Storage reads no environment: the kind is the caller's (the settings' or the resource's) to say.
    with pytest.raises(StorageError, match="unknown storage backend 'sqlite'"):
        open_storage("sqlite", duckdb_path="x.duckdb")


def test_the_duckdb_backend_never_loads_an_extension(monkeypatch, tmp_path, small_chain):
    """status / dashboard with the default backend: extension_file must never be reached."""
    from stx_pipeline.operations.status import build_report

    def refuse(_: object) -> Path:
        raise AssertionError("the duckdb backend loaded an extension")

    monkeypatch.setattr(backend_module, "extension_file", refuse)
    monkeypatch.delenv("STX_STORAGE", raising=False)
    db = tmp_path / "w.duckdb"
    monkeypatch.setenv("STX_DUCKDB_PATH", str(db))
    storage = Settings.from_env().storage_backend()
    assert isinstance(storage, DuckDBFileStorage) and storage.path == str(db)
    day = last_complete_day()
    with storage.write_connection() as conn:
        replace_day(conn, day, day_table(small_chain, day))
    report = build_report(storage, 1, with_instance=False)
    assert report.error is None and report.total_transactions == small_chain.day_total(day)


# --- against PostgreSQL --------------------------------------------------------------------------------------------


@pytest.mark.slow  # starts a process: PostgreSQL
def test_the_storage_sql_runs_unchanged_on_the_lake(tmp_path, small_chain, postgres_server: PostgresServer):  # noqa: F811
    lake = lake_for(postgres_server, tmp_path, "lake_sql")
    file = DuckDBFileStorage(str(tmp_path / "w.duckdb"))
    days = [FIRST + dt.timedelta(days=i) for i in range(3)]
    for storage in (lake, file):
        for day in days:
            with storage.write_connection() as conn:
                replace_day(conn, day, day_table(small_chain, day))
                replace_day(conn, day, day_table(small_chain, day))  # idempotent
    hashes = {}
    for storage in (lake, file):
        with storage.read_connection() as conn:
            assert day_counts(conn, days) == {d: small_chain.day_total(d) for d in days}
            assert duplicate_tx_ids(conn) == 0
            assert stored_days(conn) == {d: small_chain.day_total(d) for d in days}
            hashes[storage.kind] = [day_content_hash(conn, d) for d in days]
    assert hashes["ducklake"] == hashes["duckdb"]
    # NOT NULL holds in DuckLake too.
    with lake.write_connection() as conn, pytest.raises(duckdb.ConstraintException):
        conn.execute("INSERT INTO stx_transactions (tx_id) VALUES ('0x1')")
    # Readers never create a lake.
    empty = DuckLakeStorage(f"postgres:{postgres_server.create_database('lake_empty')}", str(tmp_path / "e"))
    with pytest.raises(StorageError, match="nothing has been ingested"), empty.read_connection():
        pass


@pytest.mark.slow  # starts a process: PostgreSQL
def test_a_write_conflict_is_recognised_and_the_day_retried(tmp_path, small_chain, postgres_server: PostgresServer):  # noqa: F811
    lake = lake_for(postgres_server, tmp_path, "lake_conflict")
    day_a, day_b = FIRST, FIRST + dt.timedelta(days=1)
    with lake.write_connection() as conn:
        replace_day(conn, day_a, day_table(small_chain, day_a))
    with lake.write_connection() as first, lake.write_connection() as second:
        # `first` deletes inside an open transaction; `second` replaces another day and commits meanwhile.
        first.execute("BEGIN TRANSACTION")
        first.execute("DELETE FROM stx_transactions WHERE partition_date = ?", [day_a])
        replace_day(second, day_b, day_table(small_chain, day_b))
        with pytest.raises(duckdb.TransactionException) as raised:
            first.execute("COMMIT")
        assert is_write_conflict(raised.value), raised.value
        # No transaction is left open; the same call again (what replace_day's retry does) lands.
        replace_day(first, day_a, day_table(small_chain, day_a))
    with lake.read_connection() as conn:
        assert day_counts(conn, [day_a, day_b]) == {d: small_chain.day_total(d) for d in (day_a, day_b)}


def _materialize_days(first: str, last: str, env: dict[str, str]) -> tuple[str, bool, list[bool]]:
    """One backfill run in a fresh process: stx_transactions over [first, last] into the lake."""
    os.environ.update(env)  # the settings the definitions are built from (STX_START_DATE)
    import dagster as dg

    from stx_pipeline.definitions import defs
    from stx_pipeline.resources import HiroApiResource, StorageResource
    from stx_pipeline.settings import Settings

    stx_transactions = defs().get_assets_def("stx_transactions")

    result = dg.materialize(
        [stx_transactions],
        resources={
            "hiro": HiroApiResource(base_url=env["STX_API_URL"], requests_per_minute=0),
            "storage": StorageResource.from_settings(Settings.from_env()),  # STX_STORAGE=ducklake: the lake
        },
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=False,
    )
    checks = [e.passed for e in result.get_asset_check_evaluations()]
    return first, result.success, checks


@pytest.mark.slow
def test_thirty_days_by_eight_concurrent_runs_land_exactly_once(
    tmp_path,
    simulator,
    small_chain,
    postgres_server: PostgresServer,  # noqa: F811
    monkeypatch,
):
    lake = lake_for(postgres_server, tmp_path, "lake_backfill")
    days = [last_complete_day() - dt.timedelta(days=i) for i in range(29, -1, -1)]
    env = {
        **lake_env(lake),
        "STX_API_URL": simulator.url,
        "STX_REQUESTS_PER_MINUTE": "0",
        "STX_DUCKDB_PATH": str(tmp_path / "unused.duckdb"),
        "STX_START_DATE": (days[0] - dt.timedelta(days=5)).isoformat(),
    }
    # 8 runs of 3-4 consecutive days, as BackfillPolicy.multi_run would cut them, all started at once.
    ranges = [(days[i * 30 // 8].isoformat(), days[(i + 1) * 30 // 8 - 1].isoformat()) for i in range(8)]
    with ProcessPoolExecutor(max_workers=8, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(_materialize_days, *zip(*ranges, strict=True), [env] * 8))
    assert all(ok and checks and all(checks) for _, ok, checks in outcomes), outcomes
    with lake.read_connection() as conn:
        assert day_counts(conn, days) == {d: small_chain.day_total(d) for d in days}
        assert duplicate_tx_ids(conn) == 0
        assert sum(stored_days(conn).values()) == sum(small_chain.day_total(d) for d in days)

    # The readers, unchanged, on the lake: status, the dashboard and its totals check.
    from stx_pipeline.dashboard import build_dashboard_from_path, compare_page_totals
    from stx_pipeline.operations.status import build_report

    report = build_report(lake, 30, with_instance=False)
    assert report.error is None and report.days_covered == 30 and report.exit_code == 0, report
    assert "ducklake:postgres:" in report.database
    page = build_dashboard_from_path(lake, tmp_path / "public")
    assert page.days_covered == 30
    assert compare_page_totals(page.path, lake).matches


@pytest.mark.slow  # starts a process: PostgreSQL and the CLI
def test_migrate_to_the_lake_and_back_keeps_every_day(tmp_path, small_chain, postgres_server: PostgresServer):  # noqa: F811
    lake = lake_for(postgres_server, tmp_path, "lake_migrate")
    source = tmp_path / "source.duckdb"
    days = [FIRST + dt.timedelta(days=i) for i in range(4)]
    with DuckDBFileStorage(str(source)).write_connection() as conn:
        for day in days:
            replace_day(conn, day, day_table(small_chain, day))
        original = {d: (small_chain.day_total(d), day_content_hash(conn, d)) for d in days}

    # DuckDB file -> lake, through the CLI command.
    env = {**os.environ, **lake_env(lake), "STX_DUCKDB_PATH": str(source), "STX_STORAGE": "duckdb"}
    result = cli(["migrate", "--to", "ducklake"], env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verified" in result.stdout and f"{sum(c for c, _ in original.values()):,} rows" in result.stdout
    with lake.read_connection() as conn:
        assert {d: (c, day_content_hash(conn, d)) for d, c in stored_days(conn).items()} == original
    again = cli(["migrate", "--to", "ducklake"], env, timeout=120)
    assert again.returncode == 1 and "--overwrite" in again.stderr

    # Lake -> a new DuckDB file, and over an existing one only with overwrite.
    back = tmp_path / "back" / "wallet.duckdb"
    outcome = migrate(back, lake, "duckdb")
    assert outcome.verified and outcome.days == 4 and outcome.rows == sum(c for c, _ in original.values())
    with DuckDBFileStorage(str(back)).read_connection() as conn:
        assert {d: (c, day_content_hash(conn, d)) for d, c in stored_days(conn).items()} == original
    with pytest.raises(StorageError, match="--overwrite"):
        migrate(back, lake, "duckdb")
    assert migrate(back, lake, "duckdb", overwrite=True).replaced_rows == outcome.rows
