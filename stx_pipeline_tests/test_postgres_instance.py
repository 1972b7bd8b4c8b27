"""Dagster on PostgreSQL for real: deploy/dagster-postgres.yaml as the instance of `dagster dev` (webserver +
daemon) on a throw-away local PostgreSQL server, and a 7-day backfill through it with the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stx_pipeline.devtools.dagster_env import cli, dagster_dev, pipeline_env
from stx_pipeline.devtools.postgres import PostgresServer
from stx_pipeline.operations.window import last_complete_day
from stx_pipeline_tests.conftest import PROJECT_ROOT
from stx_pipeline_tests.postgres_server import postgres_server  # noqa: F401 (fixture)
from stx_pipeline_tests.test_backfill_e2e import stored, window

pytestmark = pytest.mark.slow


def postgres_instance_env(root: Path, api_url: str, server: PostgresServer, db_name: str) -> dict[str, str]:
    """The e2e environment with DAGSTER_HOME holding deploy/dagster-postgres.yaml, pointed at `db_name`."""
    server.create_database(db_name)
    env = pipeline_env(
        root,
        api_url,
        DAGSTER_PG_HOST=server.host,
        DAGSTER_PG_PORT=str(server.port),
        DAGSTER_PG_USER=server.user,
        DAGSTER_PG_PASSWORD="",  # trust authentication on the test server
        DAGSTER_PG_DB=db_name,
    )
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster-postgres.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
    return env


def runs_in_postgres(server: PostgresServer, db_name: str) -> dict[str, int]:
    import psycopg2

    conn = psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=db_name)
    try:
        with conn.cursor() as cur:
            # The backfill's runs only: the dashboard's automation may start a run that dagster dev's shutdown cuts
            # short (FAILURE), which says nothing about the backfill.
            cur.execute(
                "SELECT status, count(*) FROM runs WHERE run_id IN "
                "(SELECT run_id FROM run_tags WHERE key = 'dagster/backfill') GROUP BY status"
            )
            return {status: count for status, count in cur.fetchall()}
    finally:
        conn.close()


def test_seven_day_backfill_through_dagster_on_postgres(
    tmp_path,
    simulator,
    small_chain,
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    env = postgres_instance_env(tmp_path, simulator.url, postgres_server, "dagster_e2e")
    days = window(last_complete_day(), 7)
    with dagster_dev(tmp_path, env) as ui:
        env["STX_UI_URL"] = ui
        result = cli(["backfill", "--days", "7", "--wait"], env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert stored(env, days) == {d: small_chain.day_total(d) for d in days}

        status = cli(["status", "--target-days", "7", "--json"], env)
        report = json.loads(status.stdout)
        assert status.returncode == 0, status.stdout + status.stderr
        assert report["days_materialized"] == 7 and report["instance_source"] == "webserver"

        again = cli(["backfill", "--days", "7"], env)
        assert again.returncode == 0 and "Nothing to do" in again.stdout

    # The backfill's runs were recorded in PostgreSQL (7 days at STX_DAYS_PER_RUN=5: 2 runs), not in local SQLite
    # files.
    runs = runs_in_postgres(postgres_server, "dagster_e2e")
    assert runs == {"SUCCESS": 2}, runs
    home = Path(env["DAGSTER_HOME"])
    assert not list(home.rglob("*.db")), list(home.rglob("*.db"))
