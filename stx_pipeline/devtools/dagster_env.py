"""Real Dagster processes for end-to-end tests and benchmarks: a temporary instance, `dagster dev`, the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stx_pipeline.operations import background
from stx_pipeline.operations.background import PROJECT_ROOT, dagster_service, stop, up

CLI = [str(Path(sys.executable).with_name("stx-pipeline"))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_dagster_home(root: Path) -> Path:
    return background.make_dagster_home(root / "dagster_home")


def pipeline_env(root: Path, api_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(make_dagster_home(root)),
            "STX_API_URL": api_url,
            "STX_DUCKDB_PATH": str(root / "data" / "wallet_metrics.duckdb"),
            "STX_PUBLIC_DIR": str(root / "public"),
            "STX_REQUESTS_PER_MINUTE": "0",
            "STX_DAILY_TOPUP": "off",
            # No check run at start-up beside the runs a test launches (test_alerts_e2e turns it on).
            "STX_FRESHNESS_SENSOR": "off",
            **extra,
        }
    )
    return env


@contextmanager
def dagster_dev(root: Path, env: dict[str, str]) -> Iterator[str]:
    """`dagster dev` (webserver + daemon + code server) in the background; yields the UI URL."""
    port = free_port()
    service = dagster_service("127.0.0.1", port, run_dir=root / "run")
    try:
        up(service, env, timeout_s=240)  # what `make up` does
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(service, grace_s=20)


def cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
