"""Every file in deploy/ loads: instance files through Dagster's own schema (and for real on PostgreSQL), the
workspaces through Dagster's workspace schema, compose/Helm YAML, the systemd units as INI, the Dockerfile, the
proxy's environment against its Caddyfile (the Caddyfile itself runs for real in test_auth_proxy_e2e.py)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from stx_pipeline.devtools.postgres import PostgresServer
from stx_pipeline_tests.conftest import PROJECT_ROOT
from stx_pipeline_tests.postgres_server import postgres_server  # noqa: F401 (fixture)

DEPLOY = PROJECT_ROOT / "deploy"
INSTANCE_FILES = ["dagster-postgres.yaml", "dagster-postgres-ducklake.yaml"]
PG_ENV = {
    "DAGSTER_PG_HOST": "127.0.0.1",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "postgres",
    "DAGSTER_PG_PASSWORD": "",
    "DAGSTER_PG_DB": "dagster",
}


def _home_with(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name.removesuffix(".yaml")
    home.mkdir()
    shutil.copy(DEPLOY / name, home / "dagster.yaml")
    return home


@pytest.mark.parametrize("name", INSTANCE_FILES)
def test_instance_files_pass_dagsters_schema(name, tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)
    config, instance_class = dagster_instance_config(str(_home_with(tmp_path, name)))
    assert instance_class is None
    assert "postgres" in config["storage"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    expected_limit = 8 if "ducklake" in name else 1
    assert config["concurrency"]["pools"]["default_limit"] == expected_limit


@pytest.mark.slow  # starts a process: PostgreSQL
@pytest.mark.parametrize("name", INSTANCE_FILES)
def test_instance_files_open_a_real_postgres_instance(name, tmp_path, monkeypatch, postgres_server: PostgresServer):  # noqa: F811
    import dagster as dg

    db = f"deploy_{name.split('.')[0].replace('-', '_')}"
    postgres_server.create_database(db)
    env = {**PG_ENV, "DAGSTER_PG_PORT": str(postgres_server.port), "DAGSTER_PG_DB": db}
    home = _home_with(tmp_path, name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.get_runs() == []


@pytest.mark.parametrize("path", ["workspace-grpc.yaml", "compose/workspace.yaml"])
def test_workspaces_pass_dagsters_schema(path):
    from dagster._core.workspace.config_schema import ensure_workspace_config

    config = ensure_workspace_config(yaml.safe_load((DEPLOY / path).read_text()), str(DEPLOY / path))
    (location,) = config["load_from"]  # type: ignore[index]
    assert location["grpc_server"]["port"] == 4000


def test_compose_file():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon", "proxy"}
    assert services["code"]["command"][:3] == ["dagster", "api", "grpc"]
    for name in ("code", "webserver", "daemon"):
        env = services[name]["environment"]
        assert env["STX_STORAGE"] == "ducklake" and env["DAGSTER_PG_HOST"] == "postgres"
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume
    assert "-w" in services["daemon"]["command"] and "-w" in services["webserver"]["command"]
    # Only the proxy is published; the webserver is reachable on the compose network alone.
    assert [name for name, service in services.items() if service.get("ports")] == ["proxy"]
    proxy = services["proxy"]
    assert proxy["volumes"][0] == "./caddy/Caddyfile:/etc/caddy/Caddyfile:ro"
    assert proxy["environment"]["STX_UI_UPSTREAM"] == "webserver:3000"
    users = compose["secrets"][proxy["secrets"][0]]["file"]
    assert proxy["environment"]["STX_UI_USERS_FILE"] == "/run/secrets/" + proxy["secrets"][0]
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/" + users.removeprefix("./") in ignored and "deploy/" + proxy["env_file"][2:] in ignored
    assert (DEPLOY / "compose" / "create-lake-db.sql").read_text().count("CREATE DATABASE lake") == 1


def test_helm_values():
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "stx_pipeline.definitions"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["postgresql"]["enabled"] is False
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"  # no public service
    assert "ingress" not in values


def test_helm_ingress_asks_for_a_login_over_tls():
    ingress = yaml.safe_load((DEPLOY / "helm" / "ingress-basic-auth.yaml").read_text())["ingress"]
    annotations = ingress["annotations"]
    assert ingress["enabled"] is True and annotations["kubernetes.io/ingress.class"] == "nginx"
    assert annotations["nginx.ingress.kubernetes.io/auth-type"] == "basic"
    assert annotations["nginx.ingress.kubernetes.io/auth-secret"] == "stx-ui-basic-auth"
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    assert ingress["dagsterWebserver"]["tls"] == {"enabled": True, "secretName": "stx-ui-tls"}


@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").glob("*.service")))
def test_systemd_units_parse(unit):
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / unit).read_text())
    assert parser.sections() == ["Unit", "Service", "Install"]
    service = parser["Service"]
    assert service["EnvironmentFile"] == "/etc/stx-pipeline/env" and service["KillSignal"] == "SIGINT"
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name in {"dagster", "dagster-webserver", "dagster-daemon"}
    if "-w" in argv:
        assert (PROJECT_ROOT / argv[argv.index("-w") + 1]).is_file()
    if "-h" in argv:  # the UI and the code server listen on loopback only (Caddy is the way in)
        assert argv[argv.index("-h") + 1] == "127.0.0.1"
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_the_caddy_drop_in_and_environment_example_match_the_caddyfile():
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / "caddy.service.d" / "stx-ui.conf").read_text())
    assert parser["Service"]["EnvironmentFile"] == "/etc/caddy/stx-ui.env"
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "caddy" / "stx-ui.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    used = set(re.findall(r"\{\$(STX_[A-Z_]+)", (DEPLOY / "caddy" / "Caddyfile").read_text()))
    assert set(example) == used == {"STX_UI_SITE", "STX_UI_USERS_FILE", "STX_UI_UPSTREAM", "STX_UI_ACCESS_LOG"}
    assert example["STX_UI_UPSTREAM"] == "127.0.0.1:3000"


def test_no_password_hash_or_ui_credential_in_deploy():
    """The proxy's users file is made by the operator; no deploy file carries a hash or a UI password."""
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"\$2[aby]?\$\d\d\$", text), path  # a bcrypt hash
            assert not re.search(r"^\s*STX_UI_(PASSWORD|TOKEN)\s*[=:]", text, re.MULTILINE), path


def test_the_systemd_environment_example_names_every_setting():
    keys = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "systemd" / "stx-pipeline.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert set(PG_ENV) | {"DAGSTER_HOME", "STX_STORAGE", "STX_DUCKLAKE_CATALOG", "STX_DUCKLAKE_DATA_PATH"} <= keys


def test_dockerfile_copies_what_exists_and_serves_the_definitions():
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (PROJECT_ROOT / source).exists(), line
    assert "uv sync --frozen --no-dev" in text
    assert '"-m", "stx_pipeline.definitions"' in text
