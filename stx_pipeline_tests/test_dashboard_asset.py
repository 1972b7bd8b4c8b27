"""The wallet_dashboard asset, its check, its automation, and the CLI / `dagster asset materialize` ways to run it.

Days are ingested through the real stx_transactions asset against the simulator over HTTP, or, where only the
dashboard is under test, written straight from the simulator's generator into DuckDB.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner

from stx_pipeline.assets.dashboard import (
    CHECK_PAGE_TOTALS,
    page_totals_match_duckdb,
    wallet_dashboard,
)
from stx_pipeline.dashboard import page_totals
from stx_pipeline.dashboard.files import PLOTLY_JS
from stx_pipeline.days import day_window
from stx_pipeline.definitions import defs as code_location
from stx_pipeline.devtools.resources import pipeline_resources
from stx_pipeline.hiro import records_to_table
from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain
from stx_pipeline.simulator.catalog import HOSTILE_CONTRACT_NAME, HOSTILE_FUNCTION_NAME
from stx_pipeline.storage import replace_day
from stx_pipeline_tests.conftest import (
    PROJECT_ROOT,
    days,
    failure_message,
    lock_held_by_another_process,
)
from stx_pipeline_tests.test_dashboard_page import parse

# As the code location builds it from this environment (conftest: STX_START_DATE=2024-11-01).
stx_transactions = code_location().get_assets_def("stx_transactions")

FIRST = dt.date(2025, 3, 1)
DASHBOARD = dg.AssetKey("wallet_dashboard")


def ingest(sim: SimulatorServer, db: Path, first: dt.date, last: dt.date, instance: dg.DagsterInstance) -> None:
    result = dg.materialize(
        [stx_transactions],
        resources=pipeline_resources(sim.url, db),
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        instance=instance,
    )
    assert result.success


def build(
    db: Path, out: Path, instance: dg.DagsterInstance | None = None, *, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    from stx_pipeline.resources import StorageResource

    return dg.materialize(
        [wallet_dashboard, page_totals_match_duckdb],
        resources={"storage": StorageResource(duckdb_path=str(db))},
        run_config={"ops": {"wallet_dashboard": {"config": {"public_dir": str(out)}}}},
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def write_days(db: Path, chain: SyntheticChain, wanted: list[dt.date]) -> None:
    """The simulator's rows straight into DuckDB, the way the asset stores them, without HTTP."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db)) as conn:
        for day in wanted:
            replace_day(conn, day, records_to_table(chain.day_transactions(day), day, window=day_window(day)))


def chain_totals(chain: SyntheticChain, wanted: list[dt.date]) -> tuple[int, int]:
    txs = [tx for day in wanted for tx in chain.day_transactions(day)]
    return len(txs), sum(int(tx["fee_rate"]) for tx in txs)


@pytest.mark.slow  # a long in-process scenario (several seconds): make test
def test_dashboard_over_ingested_days(simulator, small_chain, db_path, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    ingest(simulator, db_path, FIRST, FIRST + dt.timedelta(days=2), instance)
    # A gap, then one more day: the page covers both runs and names the gap.
    ingest(simulator, db_path, FIRST + dt.timedelta(days=5), FIRST + dt.timedelta(days=5), instance)
    stored = [*days(FIRST.isoformat(), 3), FIRST + dt.timedelta(days=5)]

    out = tmp_path / "public"
    result = build(db_path, out, instance)
    assert result.success

    page = out / "index.html"
    assert page.is_file() and (out / "assets" / PLOTLY_JS).is_file()
    meta = result.asset_materializations_for_node("wallet_dashboard")[0].metadata
    assert meta["page"].value == str(page.resolve())
    assert meta["size_bytes"].value == page.stat().st_size
    assert meta["value_page"].value == str((out / "value.html").resolve())
    library = (out / "assets" / PLOTLY_JS).stat().st_size
    weight = max(p.stat().st_size for p in (page, out / "value.html")) + library
    assert meta["page_weight_bytes"].value == weight < 2_000_000
    assert meta["first_day"].value == "2025-03-01"
    assert meta["last_day"].value == "2025-03-06"
    assert meta["days_covered"].value == 4
    assert meta["missing_days"].value == 2
    assert meta["missing_ranges"].value == "2025-03-04..2025-03-05"

    n, fees = chain_totals(small_chain, stored)
    assert n == sum(small_chain.day_total(d) for d in stored)
    assert meta["headline/transactions_total"].value == n
    assert meta["headline/fees_total_stx"].value == pytest.approx(fees / 1_000_000)
    assert meta["headline/active_wallets_7d"].value > 0
    totals = page_totals(page)
    assert (totals["transactions"], totals["fees_ustx"]) == (n, fees)
    assert (totals["first_day"], totals["last_day"], totals["days_covered"]) == ("2025-03-01", "2025-03-06", 4)

    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == CHECK_PAGE_TOTALS and check.passed
    assert check.metadata["duckdb_transactions"].value == n
    assert check.metadata["page_fees_ustx"].value == fees


def test_check_fails_when_the_page_disagrees_with_duckdb(small_chain, db_path, tmp_path):
    write_days(db_path, small_chain, [FIRST])
    instance = dg.DagsterInstance.ephemeral()
    out = tmp_path / "public"
    assert build(db_path, out, instance).success
    # New rows land after the page was built: the check, run alone, must notice the stale totals.
    write_days(db_path, small_chain, [FIRST + dt.timedelta(days=1)])
    from stx_pipeline.resources import StorageResource

    result = dg.materialize(
        [wallet_dashboard, page_totals_match_duckdb],
        selection=dg.AssetSelection.checks(page_totals_match_duckdb),
        resources={"storage": StorageResource(duckdb_path=str(db_path))},
        instance=instance,
        raise_on_error=False,
    )
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["page_transactions"].value == small_chain.day_total(FIRST)
    assert check.metadata["duckdb_transactions"].value == small_chain.day_total(FIRST) + small_chain.day_total(
        FIRST + dt.timedelta(days=1)
    )


def test_hostile_chain_strings_are_shown_as_text(db_path, tmp_path):
    chain = SyntheticChain(ChainConfig(seed=11, txs_per_day=600, hostile_strings=True))
    with SimulatorServer(chain, FaultConfig()) as sim:
        ingest(sim, db_path, FIRST, FIRST, dg.DagsterInstance.ephemeral())
    with duckdb.connect(str(db_path), read_only=True) as conn:
        (hostile_rows,) = conn.execute(
            "SELECT count(*) FROM stx_transactions WHERE contract_id LIKE ? OR function_name = ?",
            [f"%.{HOSTILE_CONTRACT_NAME}", HOSTILE_FUNCTION_NAME],
        ).fetchone()
    assert hostile_rows > 0  # the strings really went through the API, the parser and DuckDB

    out = tmp_path / "public"
    assert build(db_path, out).success
    html = (out / "index.html").read_text("utf-8")
    assert "<script>alert" not in html and "<img src=x" not in html
    page = parse(html)
    # Only our own script elements; the hostile names read back verbatim as table-cell text.
    assert [attrs.get("id") or attrs.get("src") for attrs, _ in page.scripts] == [
        "stx-totals",
        "stx-data",
        f"assets/{PLOTLY_JS}",
        None,
    ]
    assert any(HOSTILE_CONTRACT_NAME in cell for cell in page.cells)
    assert any(HOSTILE_FUNCTION_NAME in cell for cell in page.cells)


def test_no_database_or_table_fails_clearly(tmp_path):
    missing = tmp_path / "nowhere.duckdb"
    result = build(missing, tmp_path / "public", raise_on_error=False)
    assert not result.success
    assert "no transactions stored yet: backfill first" in failure_message(result)

    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    result = build(empty, tmp_path / "public", raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "no transactions stored yet: backfill first" in message and "does not exist" in message
    assert not (tmp_path / "public" / "index.html").exists()


@pytest.mark.slow  # starts a process: another process holds the DuckDB lock
def test_build_waits_for_a_writer_to_release_the_lock(small_chain, db_path, tmp_path):
    """A writer holding the file (another process) only delays the rebuild; it reads read-only meanwhile."""
    write_days(db_path, small_chain, [FIRST])
    with lock_held_by_another_process(db_path, 2) as holder:
        result = build(db_path, tmp_path / "public")
        assert holder.poll() is not None  # it returned only once the writer had let go of the file
    assert result.success
    (check,) = result.get_asset_check_evaluations()  # and the page it wrote holds the day's rows
    assert check.passed and check.metadata["duckdb_transactions"].value == small_chain.day_total(FIRST)


# --- automation ----------------------------------------------------------------------------------------------


class Ticks:
    """Successive evaluations of the code location's automation conditions, as the sensor would run them."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance = defs, instance
        self.now = dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC)
        self.cursor = None

    def requests_dashboard(self) -> bool:
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, evaluation_time=self.now, cursor=self.cursor
        )
        self.cursor, self.now = result.cursor, self.now + dt.timedelta(minutes=1)
        return result.get_num_requested(DASHBOARD) == 1


def land(instance: dg.DagsterInstance, *partitions: str) -> None:
    for key in partitions:
        instance.report_runless_asset_event(dg.AssetMaterialization("stx_transactions", partition=key))


def dashboard_built(instance: dg.DagsterInstance) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("wallet_dashboard"))


@pytest.fixture
def defs() -> dg.Definitions:
    return code_location()


def test_automation_rebuilds_after_new_days_despite_gaps(defs):
    instance = dg.DagsterInstance.ephemeral()
    ticks = Ticks(defs, instance)
    assert not ticks.requests_dashboard()  # nothing stored: nothing to build
    # 2 of the 5 days 2025-03-01..05 land, and every earlier partition since 2024-11-01 is missing too.
    land(instance, "2025-03-01", "2025-03-03")
    assert ticks.requests_dashboard()
    assert not ticks.requests_dashboard()  # requested once, not on every tick
    dashboard_built(instance)
    assert not ticks.requests_dashboard()  # built, nothing new
    assert not ticks.requests_dashboard()
    land(instance, "2025-03-05")
    assert ticks.requests_dashboard()
    dashboard_built(instance)
    assert not ticks.requests_dashboard()


def test_automation_builds_once_when_days_were_stored_before_the_sensor_started(defs):
    instance = dg.DagsterInstance.ephemeral()
    land(instance, "2025-03-01", "2025-03-02")
    ticks = Ticks(defs, instance)
    assert ticks.requests_dashboard()
    assert not ticks.requests_dashboard()  # a failed first build is not retried every minute


def test_plain_eager_would_never_fire_with_gaps():
    """Why the condition is not plain eager(): this is the trap the custom condition avoids."""
    from stx_pipeline.resources import resources_from_env
    from stx_pipeline.settings import Settings

    spec = dg.AssetSpec(
        "wallet_dashboard", deps=[stx_transactions], automation_condition=dg.AutomationCondition.eager()
    )
    plain = dg.Definitions(assets=[stx_transactions, spec], resources=resources_from_env(Settings.from_env()))
    instance = dg.DagsterInstance.ephemeral()
    ticks = Ticks(plain, instance)
    ticks.requests_dashboard()
    land(instance, "2025-03-01", "2025-03-03")
    assert not ticks.requests_dashboard()


def test_automation_sensor_is_declared_running(defs):
    sensor = defs.resolve_sensor_def("wallet_dashboard_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60
    assert sensor.asset_selection.resolve(defs.resolve_asset_graph()) == {DASHBOARD}
    assert defs.resolve_assets_def("wallet_dashboard").partitions_def is None


# --- command line ------------------------------------------------------------------------------------------------


def test_cli_dashboard_command(small_chain, db_path, tmp_path, monkeypatch):
    from stx_pipeline.cli import main

    write_days(db_path, small_chain, [FIRST])
    out = tmp_path / "site"
    monkeypatch.setenv("STX_DUCKDB_PATH", str(db_path))
    monkeypatch.setenv("STX_PUBLIC_DIR", str(out))
    result = CliRunner().invoke(main, ["dashboard"])
    assert result.exit_code == 0, result.output
    assert f"Dashboard written: {out / 'index.html'}" in result.output
    assert page_totals(out / "index.html")["transactions"] == small_chain.day_total(FIRST)

    monkeypatch.setenv("STX_DUCKDB_PATH", str(tmp_path / "missing.duckdb"))
    result = CliRunner().invoke(main, ["dashboard"])
    assert result.exit_code == 1
    assert "no transactions stored yet: backfill first" in result.output


@pytest.mark.slow
def test_dagster_asset_materialize_wallet_dashboard(small_chain, db_path, tmp_path):
    write_days(db_path, small_chain, [FIRST, FIRST + dt.timedelta(days=1)])
    out = tmp_path / "public"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "STX_DUCKDB_PATH": str(db_path),
        "STX_PUBLIC_DIR": str(out),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "stx_pipeline.definitions",
            "--select",
            "wallet_dashboard",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    totals = page_totals(out / "index.html")
    assert totals["transactions"] == small_chain.day_total(FIRST) + small_chain.day_total(FIRST + dt.timedelta(days=1))
    assert json.dumps(totals)  # plain JSON
    # The run's check result went to the instance the CLI used.
    instance = dg.DagsterInstance.from_config(str(home))
    record = instance.get_latest_materialization_event(DASHBOARD)
    assert record is not None and record.asset_materialization is not None
    assert record.asset_materialization.metadata["page"].value == str((out / "index.html").resolve())
