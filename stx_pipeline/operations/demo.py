"""`make demo`: the whole pipeline offline, against the bundled API simulator.

Starts the simulator and Dagster (webserver + daemon) in the background with a demo instance of their
own under `demo/` (so synthetic days never mix with a real history), backfills the last 14 days through
a real partition backfill, waits for the automation sensor to rebuild the dashboard, then prints the
status and where to look. `make down` stops everything; `make demo-clean` removes `demo/`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from stx_pipeline.operations.background import (
    PROJECT_ROOT,
    dagster_service,
    make_dagster_home,
    simulator_service,
    start,
    wait_for_daemon,
)
from stx_pipeline.settings import ServiceSettings

DEMO_DIR = PROJECT_ROOT / "demo"


def demo_env(sim_port: int, days: int) -> dict[str, str]:
    home = make_dagster_home(DEMO_DIR / "dagster_home")
    return {
        "DAGSTER_HOME": str(home),
        "STX_API_URL": f"http://127.0.0.1:{sim_port}",
        "STX_REQUESTS_PER_MINUTE": "0",
        "STX_DUCKDB_PATH": str(DEMO_DIR / "data" / "wallet_metrics.duckdb"),
        "STX_PUBLIC_DIR": str(DEMO_DIR / "public" / "wallet"),
        "STX_TARGET_DAYS": str(days),
        # The demo shows a backfill; the top-up sensor stays off so the two do not race for the same days.
        "STX_DAILY_TOPUP": "off",
    }


def main() -> None:
    days = int(os.environ.get("DAYS", "14"))
    services = ServiceSettings.from_env()
    host, port, sim_port = services.ui_host, services.ui_port, services.simulator_port
    env = {**os.environ, **demo_env(sim_port, days)}
    ui = f"http://{host}:{port}"

    start(simulator_service(sim_port), env=env)
    start(dagster_service(host, port), env=env, timeout_s=240)
    wait_for_daemon(ui)
    cli = str(Path(sys.executable).with_name("stx-pipeline"))
    backfill = subprocess.run([cli, "backfill", "--days", str(days), "--wait", "--ui-url", ui], env=env, check=False)
    if backfill.returncode != 0:
        raise SystemExit(f"the demo backfill did not complete (exit {backfill.returncode}); see `make logs`")

    page = Path(env["STX_PUBLIC_DIR"]) / "index.html"
    print("Waiting for the automation sensor to rebuild the dashboard ...")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not page.exists():
        time.sleep(3)
    if not page.exists():
        print("The sensor has not rebuilt it yet; building it now with `stx-pipeline dashboard`.")
        subprocess.run([cli, "dashboard"], env=env, check=True)
    subprocess.run([cli, "status", "--target-days", str(days)], env=env, check=False)
    print(
        f"\nDagster UI:   {ui}  (Assets > stx_transactions, Runs > Backfills)\n"
        f"Dashboard:    file://{page}\n"
        f"Stop with:    make down"
    )


if __name__ == "__main__":
    main()
