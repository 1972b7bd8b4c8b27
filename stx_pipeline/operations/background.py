"""Background processes for `make up` / `make down` / `make demo`: Dagster (webserver + daemon) and the simulator.

Each service runs in its own session (process group) with a pid file and a log under `.run/`, so `down`
stops it and every child it spawned (code server, daemon, run workers) with SIGINT, the signal
`dagster dev` shuts down cleanly on, then SIGTERM and SIGKILL if it lingers.

    python -m stx_pipeline.operations.background [--host H --port P --simulator-port S] up|down|status|logs

Defaults come from the settings (STX_UI_HOST, STX_UI_PORT, STX_SIMULATOR_PORT, STX_RUN_DIR): only the part
`ServiceSettings` reads, so `make down` works even when a pipeline variable is wrong.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import requests

from stx_pipeline.settings import ServiceSettings, SettingsError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_run_dir() -> Path:
    """STX_RUN_DIR, else .run/ in the project: where pid files and logs go."""
    try:
        configured = ServiceSettings.from_env().run_dir
    except SettingsError as exc:
        raise SystemExit(f"bad environment: {exc}") from None
    return Path(configured) if configured else PROJECT_ROOT / ".run"


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    ready_url: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid


def make_dagster_home(home: Path) -> Path:
    """A DAGSTER_HOME at `home` with the project's dagster.yaml, its storage moved under `home/.dagster`.

    The project's file uses paths relative to DAGSTER_HOME (stx_pipeline/instance_storage.py); they are made
    absolute here so that `DagsterInstance.from_config(home)` finds the same storage without DAGSTER_HOME set.
    """
    home.mkdir(parents=True, exist_ok=True)
    config = (PROJECT_ROOT / "dagster.yaml").read_text().replace("base_dir: .dagster", f"base_dir: {home}/.dagster")
    (home / "dagster.yaml").write_text(config)
    return home


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def dagster_service(host: str, port: int, run_dir: Path | None = None) -> Service:
    return Service(
        "dagster",
        [_bin("dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)],
        f"http://{host}:{port}/server_info",
        run_dir or default_run_dir(),
    )


def simulator_service(port: int, extra: list[str] | None = None, run_dir: Path | None = None) -> Service:
    return Service(
        "simulator",
        [_bin("stx-pipeline"), "simulate", "--port", str(port), *(extra or [])],
        f"http://127.0.0.1:{port}/extended",
        run_dir or default_run_dir(),
    )


def start(service: Service, env: dict[str, str] | None = None, timeout_s: float = 180.0) -> int:
    """Start unless running; return the pid once the service answers on its ready URL."""
    running = service.pid()
    if running:
        print(f"{service.name} already running (pid {running})")
        return running
    service.run_dir.mkdir(parents=True, exist_ok=True)
    with service.log_file.open("ab") as log:
        process = subprocess.Popen(
            service.argv,
            cwd=PROJECT_ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: `down` reaches every child
        )
    service.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            service.pid_file.unlink(missing_ok=True)
            raise SystemExit(f"{service.name} exited with code {process.returncode}; see {service.log_file}")
        try:
            requests.get(service.ready_url, timeout=2)
            print(f"{service.name} up (pid {process.pid}), log: {service.log_file}")
            return process.pid
        except requests.RequestException:
            time.sleep(0.5)
    stop(service)
    raise SystemExit(
        f"{service.name} did not answer on {service.ready_url} within {timeout_s:.0f}s; see {service.log_file}"
    )


def stop(service: Service, grace_s: float = 30.0) -> bool:
    pid = service.pid()
    if pid is None:
        service.pid_file.unlink(missing_ok=True)
        return False
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            continue
        break
    service.pid_file.unlink(missing_ok=True)
    print(f"{service.name} stopped (pid {pid})")
    return True


def wait_for_daemon(ui_url: str, timeout_s: float = 120.0) -> None:
    """`dagster dev` answers HTTP before its daemon heartbeats; a backfill needs the daemon."""
    from stx_pipeline.operations.webserver import DagsterWebserver, WebserverError

    web = DagsterWebserver(ui_url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if not web.unhealthy_daemons():
                return
        except WebserverError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"the Dagster daemon behind {ui_url} is not healthy after {timeout_s:.0f}s; see `make logs`")


# The pool of stx_transactions (stx_pipeline/assets/transactions.py).
HIRO_API_POOL = "hiro_api"


def initialize_pool(env: dict[str, str]) -> None:
    """Give the `hiro_api` pool its default limit (dagster.yaml) before the daemon first sees a queued run.

    Dagster 1.13's run queue reads the configured pools before it initializes a new pool to the default limit
    (GlobalOpConcurrencyLimitsCounter), so on a fresh instance its first pass starts every queued run of the
    pool at once: two fetching runs on one DuckDB file and one API budget. Initialized here, the limit holds
    from the first run.
    """
    code = (
        "import dagster as dg\n"
        "with dg.DagsterInstance.get() as instance:\n"
        f"    instance.event_log_storage.initialize_concurrency_limit_to_default({HIRO_API_POOL!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, check=True, timeout=120)


def up(dagster: Service, env: dict[str, str], timeout_s: float = 180.0) -> int:
    """`make up`: the instance's pool, then `dagster dev` in the background; returns once its daemon is healthy."""
    env = {**os.environ, **env}
    initialize_pool(env)
    pid = start(dagster, env=env, timeout_s=timeout_s)
    wait_for_daemon(dagster.ready_url.removesuffix("/server_info"), timeout_s=timeout_s)
    return pid


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default=None, help="Where the UI listens [default: STX_UI_HOST, else 127.0.0.1].")
@click.option("--port", type=int, default=None, help="[default: STX_UI_PORT, else 3000]")
@click.option("--simulator-port", type=int, default=None, help="[default: STX_SIMULATOR_PORT, else 3999]")
@click.pass_context
def main(ctx: click.Context, host: str | None, port: int | None, simulator_port: int | None) -> None:
    """Background processes of `make up` / `make down`: Dagster (webserver + daemon) and the simulator."""
    try:
        settings = ServiceSettings.from_env()
    except SettingsError as exc:
        raise click.UsageError(f"bad environment: {exc}") from None
    host = host or settings.ui_host
    port = port or settings.ui_port
    ctx.obj = {
        "host": host,
        "port": port,
        "dagster": dagster_service(host, port),
        "simulator": simulator_service(simulator_port or settings.simulator_port),
    }


@main.command(name="up")
@click.option("--with-simulator", is_flag=True, help="Also the API simulator (demo).")
@click.pass_obj
def up_command(services: dict, with_simulator: bool) -> None:
    """Start Dagster in the background; returns once its daemon is healthy."""
    if with_simulator:
        start(services["simulator"])
    up(services["dagster"], {"DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(PROJECT_ROOT))})
    print(f"Dagster UI: http://{services['host']}:{services['port']}")


@main.command(name="down")
@click.pass_obj
def down_command(services: dict) -> None:
    """Stop everything `up` (or `make demo`) started."""
    if not any([stop(services["dagster"]), stop(services["simulator"])]):
        print("nothing running")


@main.command(name="status")
@click.pass_obj
def status_command(services: dict) -> None:
    """Which services are running."""
    for service in (services["simulator"], services["dagster"]):
        pid = service.pid()
        print(f"{service.name}: {f'running (pid {pid})' if pid else 'stopped'}")


@main.command(name="logs")
@click.pass_obj
def logs_command(services: dict) -> None:
    """Follow the services' logs."""
    files = [str(s.log_file) for s in (services["simulator"], services["dagster"]) if s.log_file.exists()]
    if not files:
        print("no logs yet: `make up` first")
        return
    os.execvp("tail", ["tail", "-n", "100", "-F", *files])


if __name__ == "__main__":
    main()
