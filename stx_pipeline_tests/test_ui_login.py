"""The CLI in front of a protected UI, against a real HTTP server on 127.0.0.1 that answers like the proxy.

What is checked: the credentials go out only from the environment (basic or bearer, seen in the request's
headers), a 401/403 or a login-page redirect is one clear message naming what to set, and no output repeats the
password or token. The real proxy in front of a real webserver: test_auth_proxy_e2e.py."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from stx_pipeline.cli import main
from stx_pipeline_tests.scripted_server import Answer, ScriptedServer

LOGIN_VARIABLES = ("STX_UI_USER", "STX_UI_PASSWORD", "STX_UI_TOKEN")


@pytest.fixture
def proxy() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """A CLI with no project .env and no credentials of the caller's shell."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("STX_DUCKDB_PATH", str(tmp_path / "data" / "wallet_metrics.duckdb"))
    for name in LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def text(result: Result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines at the terminal width


def refused(status: int) -> Answer:
    return Answer(status, b"", {"www-authenticate": 'Basic realm="restricted"'} if status == 401 else {})


def test_without_credentials_a_401_says_what_to_set(proxy, cli_env):
    cli_env.setenv("STX_UI_URL", proxy.url)
    proxy.default = refused(401)
    result = run("backfill", "--days", "2")
    assert result.exit_code == 1, result.output
    assert text(result) == (
        f"The UI at {proxy.url} asks for a login (HTTP 401): set STX_UI_USER and STX_UI_PASSWORD (basic auth at "
        "the proxy), or STX_UI_TOKEN (a bearer token), in the environment or the project's .env; never on the "
        "command line."
    )
    (seen,) = proxy.seen  # one GraphQL request (the daemon check), refused; nothing launched
    assert seen.path == "/graphql" and "Authorization" not in seen.headers


def test_wrong_basic_credentials_name_the_user_never_the_password(proxy, cli_env):
    password = secrets.token_urlsafe(16)
    cli_env.setenv("STX_UI_URL", proxy.url)
    cli_env.setenv("STX_UI_USER", "alice")
    cli_env.setenv("STX_UI_PASSWORD", password)
    proxy.default = refused(401)
    result = run("backfill", "--days", "2")
    assert result.exit_code == 1
    assert f"The UI at {proxy.url} refused the login of STX_UI_USER='alice' (HTTP 401)" in text(result)
    assert "check STX_UI_PASSWORD" in text(result)
    assert password not in result.output
    expected = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    assert [s.headers.get("Authorization") for s in proxy.seen] == [expected]


def test_a_403_says_the_account_is_forbidden(proxy, cli_env):
    cli_env.setenv("STX_UI_URL", proxy.url)
    cli_env.setenv("STX_UI_USER", "bob")
    cli_env.setenv("STX_UI_PASSWORD", secrets.token_urlsafe(16))
    proxy.default = refused(403)
    result = run("cancel")
    assert result.exit_code == 1
    assert "knows STX_UI_USER='bob' but forbids it (HTTP 403)" in text(result)


def test_a_bearer_token_is_sent_and_never_printed(proxy, cli_env):
    token = secrets.token_urlsafe(24)
    cli_env.setenv("STX_UI_URL", proxy.url)
    cli_env.setenv("STX_UI_TOKEN", token)
    proxy.default = refused(401)
    result = run("cancel")
    assert result.exit_code == 1
    assert "refused the login of STX_UI_TOKEN (HTTP 401)" in text(result)
    assert token not in result.output
    assert [s.headers.get("Authorization") for s in proxy.seen] == [f"Bearer {token}"]


def test_a_redirect_to_a_login_page_is_not_followed(proxy, cli_env):
    """oauth2-proxy answers a browser-less request with 302 to the identity provider's page."""
    cli_env.setenv("STX_UI_URL", proxy.url)
    proxy.default = Answer(302, b"", {"location": "https://idp.example/authorize?client_id=stx"})
    result = run("cancel")
    assert result.exit_code == 1
    assert "redirects to https://idp.example/authorize?client_id=stx (HTTP 302), a login page" in text(result)
    assert "STX_UI_TOKEN" in text(result) and len(proxy.seen) == 1


def test_status_reports_the_refusal_instead_of_reading_another_instance(proxy, cli_env):
    cli_env.setenv("STX_UI_URL", proxy.url)
    proxy.default = refused(401)
    result = run("status", "--target-days", "2")
    assert result.exit_code == 1, result.output
    assert f"could not read the Dagster instance: The UI at {proxy.url} asks for a login (HTTP 401)" in text(result)
    assert "STX_UI_USER and STX_UI_PASSWORD" in text(result)


def test_credentials_never_cross_the_network_in_plain_http(cli_env):
    cli_env.setenv("STX_UI_URL", "http://stx.example.invalid")
    cli_env.setenv("STX_UI_USER", "alice")
    cli_env.setenv("STX_UI_PASSWORD", "not-sent-anywhere")
    result = run("cancel")
    assert result.exit_code == 1
    assert "STX_UI_URL=http://stx.example.invalid is plain http to another machine" in text(result)
    assert "not-sent-anywhere" not in result.output


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"STX_UI_USER": "alice"}, "STX_UI_USER and STX_UI_PASSWORD go together"),
        ({"STX_UI_PASSWORD": "half-a-login"}, "STX_UI_USER and STX_UI_PASSWORD go together"),
        ({"STX_UI_USER": "a", "STX_UI_PASSWORD": "b", "STX_UI_TOKEN": "c"}, "Set STX_UI_TOKEN or STX_UI_USER"),
    ],
)
def test_an_incomplete_login_is_refused_before_any_request(proxy, cli_env, variables, message):
    cli_env.setenv("STX_UI_URL", proxy.url)
    for name, value in variables.items():
        cli_env.setenv(name, value)
    result = run("cancel")
    assert result.exit_code == 1 and message in text(result)
    assert "half-a-login" not in result.output and proxy.seen == []


def test_credentials_in_the_url_are_refused_without_repeating_them(cli_env):
    cli_env.setenv("STX_UI_URL", "https://alice:pa55word@stx.example.invalid")
    result = run("backfill", "--days", "2")
    assert result.exit_code == 2
    assert "STX_UI_URL must not hold credentials: set STX_UI_USER and STX_UI_PASSWORD" in text(result)
    assert "pa55word" not in result.output


def test_a_redirect_to_https_says_to_use_the_https_address(proxy, cli_env):
    """Caddy answers plain http with a permanent redirect to https on the same host."""
    cli_env.setenv("STX_UI_URL", proxy.url)
    https = proxy.url.replace("http://", "https://") + "/graphql"
    proxy.default = Answer(308, b"", {"location": https})
    result = run("cancel")
    assert result.exit_code == 1
    assert f"{proxy.url} redirects to https (HTTP 308): set STX_UI_URL to the https:// address" in text(result)
