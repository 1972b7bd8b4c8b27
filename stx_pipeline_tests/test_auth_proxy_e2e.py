"""The committed proxy (deploy/caddy/Caddyfile, Debian's caddy binary) in front of a real `dagster dev` on loopback.

Without credentials, or with wrong ones, the UI, /graphql and a launchPartitionBackfill mutation are refused (401)
and nothing is launched; with them `stx-pipeline backfill --wait` and `stx-pipeline status` work through the proxy
over TLS; the password shows up in no output, no log and no file of the instance.

Skipped when `caddy` is not installed, except in CI (CI=true or STX_REQUIRE_PROXY=1), where .ci/run installs it
and a missing binary is a failure.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import requests

from stx_pipeline.devtools.dagster_env import cli, dagster_dev, free_port, pipeline_env
from stx_pipeline.operations.webserver import LATEST_BACKFILL, LAUNCH_BACKFILL
from stx_pipeline.operations.window import last_complete_day
from stx_pipeline_tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

CADDYFILE = PROJECT_ROOT / "deploy" / "caddy" / "Caddyfile"
USER = "stx-e2e"


def proxy_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("STX_REQUIRE_PROXY") == "1"


@pytest.fixture
def caddy() -> str:
    """The caddy binary; asked for first, so a machine without it skips before Dagster starts."""
    found = shutil.which("caddy")
    if found:
        return found
    if proxy_required():
        pytest.fail("CI needs the proxy: no `caddy` on PATH (.ci/run installs it: apt-get install -y caddy)")
    pytest.skip("caddy is not installed (apt-get install -y caddy); CI=true makes this a failure")


def render(root: Path) -> Path:
    """The committed Caddyfile with what only a test needs: no admin endpoint, no port-80 redirect listener,
    listening on 127.0.0.1 only. Everything else (TLS, basicauth from the users file, the upstream, the
    Authorization header stopped, the access log) is the file as committed."""
    text = CADDYFILE.read_text()
    global_block = "{\n\t# Caddy's local CA"
    site_block = "{$STX_UI_SITE} {\n"
    assert text.count(global_block) == 1 and text.count(site_block) == 1, "the Caddyfile's layout changed"
    text = text.replace(global_block, "{\n\tadmin off\n\tauto_https disable_redirects\n\t# Caddy's local CA")
    text = text.replace(site_block, site_block + "\tbind 127.0.0.1\n")
    rendered = root / "Caddyfile"
    rendered.write_text(text)
    return rendered


@dataclass(frozen=True)
class Proxy:
    url: str
    ca_bundle: str  # Caddy's local root certificate: the client verifies TLS against it
    password: str
    logs: list[Path]


@contextmanager
def caddy_in_front_of(binary: str, upstream: str, root: Path) -> Iterator[Proxy]:
    root.mkdir(parents=True)
    password = secrets.token_urlsafe(18)
    # The operator's step, as docs/DEPLOY.md says: the password on stdin, never in argv.
    hashed = subprocess.run(
        [binary, "hash-password"], input=password + "\n", capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert hashed.startswith("$2a$") and password not in hashed
    users = root / "stx-ui.users"
    users.write_text(f"{USER} {hashed}\n")
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(root),
        "XDG_DATA_HOME": str(root / "data"),  # certificates and the local CA
        "XDG_CONFIG_HOME": str(root / "config"),
        "STX_UI_SITE": f"https://127.0.0.1:{port}",
        "STX_UI_USERS_FILE": str(users),
        "STX_UI_UPSTREAM": upstream.removeprefix("http://"),
        "STX_UI_ACCESS_LOG": str(root / "access.log"),
    }
    process_log = root / "caddy.log"
    with process_log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "run", "--config", str(render(root)), "--adapter", "caddyfile"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        ca = root / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"caddy exited ({process.returncode}): {process_log.read_text()}"
            try:
                if ca.exists() and requests.get(f"{url}/server_info", verify=str(ca), timeout=5).status_code == 401:
                    break
            except requests.RequestException:
                pass  # the certificate is issued just after start
            assert time.monotonic() < deadline, f"caddy not serving TLS on {url}: {process_log.read_text()}"
            time.sleep(0.3)
        yield Proxy(url, str(ca), password, [process_log, root / "access.log"])
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def stored(env: dict[str, str], days: list[dt.date]) -> dict[dt.date, int]:
    with duckdb.connect(env["STX_DUCKDB_PATH"], read_only=True) as conn:
        rows = dict(conn.execute("SELECT partition_date, count(*) FROM stx_transactions GROUP BY 1").fetchall())
    return {d: rows.get(d, 0) for d in days}


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


def test_the_proxy_refuses_without_credentials_and_the_cli_works_with_them(caddy, tmp_path, simulator, small_chain):
    env = pipeline_env(tmp_path, simulator.url)
    days = [last_complete_day() - dt.timedelta(days=1), last_complete_day()]
    mutation = {
        "query": LAUNCH_BACKFILL,
        "variables": {
            "backfillParams": {
                "assetSelection": [{"path": ["stx_transactions"]}],
                "partitionNames": [d.isoformat() for d in days],
            }
        },
    }
    with dagster_dev(tmp_path, env) as ui, caddy_in_front_of(caddy, ui, tmp_path / "proxy") as proxy:
        tls = {"verify": proxy.ca_bundle, "timeout": 30}
        right = (USER, proxy.password)
        wrong = [None, (USER, proxy.password + "x"), ("intruder", proxy.password)]

        # 1. No credentials or wrong ones: the UI, GraphQL and the backfill mutation are all refused.
        for auth in wrong:
            assert requests.get(f"{proxy.url}/", auth=auth, **tls).status_code == 401
            assert requests.get(f"{proxy.url}/graphql", auth=auth, **tls).status_code == 401
            refused = requests.post(f"{proxy.url}/graphql", json=mutation, auth=auth, **tls)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
            assert "backfill" not in refused.text.lower()
        # ... and nothing was launched: asked with the login, the instance has no backfill at all.
        latest = requests.post(f"{proxy.url}/graphql", json={"query": LATEST_BACKFILL}, auth=right, **tls)
        assert latest.status_code == 200
        assert latest.json()["data"]["partitionBackfillsOrError"]["results"] == []
        page = requests.get(f"{proxy.url}/", auth=right, **tls)
        assert page.status_code == 200 and ">Dagster</title>" in page.text

        # 2. The CLI without a login: the clear message, exit 1.
        through_proxy = {**env, "STX_UI_URL": proxy.url, "REQUESTS_CA_BUNDLE": proxy.ca_bundle}
        anonymous = cli(["backfill", "--days", "2", "--wait"], through_proxy)
        assert anonymous.returncode == 1, anonymous.stdout + anonymous.stderr
        assert "asks for a login (HTTP 401)" in anonymous.stdout and "STX_UI_PASSWORD" in anonymous.stdout

        # 3. With the login in the environment: a real backfill and status, through the proxy, over TLS.
        logged_in = {**through_proxy, "STX_UI_USER": USER, "STX_UI_PASSWORD": proxy.password}
        backfill = cli(["backfill", "--days", "2", "--wait"], logged_in)
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr
        assert f"{proxy.url}/runs/b/" in backfill.stdout
        assert stored(env, days) == {d: small_chain.day_total(d) for d in days}
        status = cli(["status", "--target-days", "2", "--json"], logged_in)
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert report["instance_source"] == "webserver" and report["days_materialized"] == 2
        assert report["total_transactions"] == sum(small_chain.day_total(d) for d in days)
        assert report["latest_backfill"]["status"] in ("COMPLETED_SUCCESS", "COMPLETED")
        outputs = [r.stdout + r.stderr for r in (anonymous, backfill, status)]

    # 4. The password (and its base64 in the Authorization header) is nowhere the test can read.
    secret = [proxy.password.encode(), base64.b64encode(f"{USER}:{proxy.password}".encode())]
    assert not any(proxy.password in out for out in outputs)
    access = (tmp_path / "proxy" / "access.log").read_text()
    assert f'"user_id":"{USER}"' in access and '"status":401' in access  # the log saw both kinds of request
    for log in proxy.logs:
        assert log.stat().st_size > 0 and files_holding(log.parent, secret) == [], log
    assert files_holding(tmp_path / "run", secret) == []  # dagster dev's log (webserver, daemon, runs)
    assert files_holding(Path(env["DAGSTER_HOME"]), secret) == []  # the instance: runs, event logs, compute logs


def test_the_committed_caddyfile_fails_closed(caddy, tmp_path):
    """Complete, it validates; with no site, an empty or a missing users file Caddy refuses to start instead of
    serving without a login."""
    binary = caddy
    empty = tmp_path / "empty.users"
    empty.write_text("")
    hashed = subprocess.run(
        [binary, "hash-password"], input=secrets.token_urlsafe(12) + "\n", capture_output=True, text=True, timeout=60
    ).stdout.strip()
    users = tmp_path / "stx-ui.users"
    users.write_text(f"{USER} {hashed}\n")
    base = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "d"), "XDG_CONFIG_HOME": str(tmp_path)}
    complete = {"STX_UI_SITE": "stx.example.com", "STX_UI_USERS_FILE": str(users)}
    accepted = subprocess.run(
        [binary, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={**base, **complete, "STX_UI_ACCESS_LOG": str(tmp_path / "access.log")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert accepted.returncode == 0 and "Valid configuration" in accepted.stdout + accepted.stderr, accepted.stderr
    cases = {
        "no STX_UI_SITE": ({"STX_UI_USERS_FILE": str(users)}, "server block without any key"),
        "empty users file": ({"STX_UI_SITE": "stx.example.com", "STX_UI_USERS_FILE": str(empty)}, "importing"),
        "missing users file": (
            {"STX_UI_SITE": "stx.example.com", "STX_UI_USERS_FILE": str(tmp_path / "none")},
            "File to import not found",
        ),
    }
    for case, (variables, message) in cases.items():
        result = subprocess.run(
            [binary, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env={**base, **variables},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0 and message in result.stderr, (case, result.stderr)
