"""A throw-away local PostgreSQL server for tests and benchmarks: initdb in a temp dir, a free port, trust auth.

Uses the distribution's server binaries (Debian: /usr/lib/postgresql/<major>/bin; override with STX_PG_BIN).
initdb refuses to run as root, so as root the cluster is owned and run by the `postgres` system user via `su`.
Without binaries the tests' `postgres_server` fixture skips, unless CI=true or STX_REQUIRE_POSTGRES=1, where it
fails: CI installs them (.ci/run), so a skip there would hide the Postgres tests silently.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


def find_bin_dir() -> Path | None:
    override = os.environ.get("STX_PG_BIN")
    if override:
        return Path(override) if (Path(override) / "initdb").exists() else None
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name or 0)
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def postgres_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("STX_REQUIRE_POSTGRES") == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    root: Path

    def libpq(self, dbname: str) -> str:
        """A libpq key=value string: what DuckLake's `postgres:` catalog and psql take."""
        return f"dbname={dbname} host={self.host} port={self.port} user={self.user}"

    def create_database(self, name: str) -> str:
        """Create `name` (dropping a previous one) and return its libpq string."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.libpq(name)


def _runner(as_postgres: bool):
    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        if as_postgres:
            argv = ["su", SUPERUSER, "-s", "/bin/sh", "-c", shlex.join(argv)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    return run


@contextmanager
def running_postgres(bin_dir: Path | None = None) -> Iterator[PostgresServer]:
    """Start a fresh cluster on a free 127.0.0.1 port; stop it and delete its files on exit."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb): apt-get install postgresql")
    as_postgres = os.geteuid() == 0
    # Not under pytest's tmp_path: that tree is 0700 root-owned and the postgres user could not enter it.
    root = Path(tempfile.mkdtemp(prefix="stx-pg-"))
    if as_postgres:
        entry = pwd.getpwnam(SUPERUSER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    run = _runner(as_postgres)
    data, log = root / "data", root / "server.log"
    init = run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8"])
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stdout}{init.stderr}")
    port = _free_port()
    # fsync off: a test cluster need not survive power loss, and it makes catalog commits much cheaper.
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    started = run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"])
    try:
        if started.returncode != 0:
            text = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}\n{text}")
        yield PostgresServer("127.0.0.1", port, SUPERUSER, root)
    finally:
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)
