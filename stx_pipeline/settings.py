"""Configuration from the environment: one typed object holding every STX_* variable, validated once.

`Settings.from_env()` reads the environment (pydantic-settings) and raises `SettingsError` whose message names
each bad variable and its value. It is called when something is built, never at import: by the code location's
`@dg.definitions` function (a bad value is then a code-location load error naming the variable, not a broken
import), by each CLI command, by `make up/down`.

`ServiceSettings` is the part the process-management commands need (where the UI and simulator listen, where
pid files go): `make down` still works when a pipeline variable such as STX_START_DATE is wrong.

No Dagster import here: the CLI's fast commands (status) read settings too.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from stx_pipeline.storage.backend import Storage

STACKS_MAINNET_START = dt.date(2021, 1, 14)
API_STRATEGIES = ("v1", "v3", "auto")
STORAGE_BACKENDS = ("duckdb", "ducklake")
_OFF = ("off", "false", "0", "no")
_ON = ("on", "true", "1", "yes")


class SettingsError(ValueError):
    """An environment variable has a value that cannot be used; the message names it."""


def dagster_home() -> Path | None:
    """DAGSTER_HOME, or the current directory when it holds the project's dagster.yaml (exported for Dagster)."""
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if home:
        return Path(home)
    if Path("dagster.yaml").exists():
        os.environ["DAGSTER_HOME"] = str(Path.cwd())
        return Path.cwd()
    return None


def anchor(path: str) -> str:
    """`path` itself when absolute or a URL; otherwise relative to DAGSTER_HOME (the project root under `make`),
    or to the current directory when DAGSTER_HOME is unset. Cron runs the CLI from anywhere: a relative path
    must not create a second database or instance there."""
    if "://" in path:  # s3://, gs://: DuckLake data in object storage
        return path
    given = Path(path).expanduser()
    if given.is_absolute():
        return str(given)
    home = os.environ.get("DAGSTER_HOME", "").strip()
    return str((Path(home).expanduser() if home else Path.cwd()) / given)


def _variable(info: ValidationInfo) -> str:
    return f"STX_{(info.field_name or '').upper()}"


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _number(value: Any, info: ValidationInfo, kind: type, minimum: float) -> Any:
    """int/float from the environment's text, with the messages operators have always seen."""
    value = _text(value)
    if value is None:
        return None
    if not isinstance(value, str):
        parsed = value
    else:
        try:
            parsed = kind(value)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ValueError(f"{_variable(info)}={value!r} is not {what}") from None
    if parsed < minimum:
        raise ValueError(f"{_variable(info)}={parsed} must be at least {minimum:g}")
    return parsed


class ServiceSettings(BaseSettings):
    """Where the processes of `make up` listen and keep their pid files, and where the CLI finds the UI."""

    model_config = SettingsConfigDict(
        env_prefix="STX_", env_ignore_empty=True, extra="ignore", frozen=True, validate_default=True
    )

    ui_host: str = "127.0.0.1"
    ui_port: int = 3000
    simulator_port: int = 3999
    # The webserver the CLI talks to over GraphQL (backfill, cancel, status).
    ui_url: str = "http://127.0.0.1:3000"
    # Pid files and logs of `make up`; unset: .run/ in the project.
    run_dir: str | None = None
    # Credentials for a UI behind the authenticating proxy (deploy/caddy): basic auth, or a bearer token for an
    # OIDC front such as oauth2-proxy. Environment only (no CLI option); SecretStr keeps them out of reprs.
    # Only the CLI uses them (operations/webserver.py checks they are complete), never the code location.
    ui_user: str | None = None
    ui_password: SecretStr | None = None
    ui_token: SecretStr | None = None

    @field_validator("ui_port", "simulator_port", mode="before")
    @classmethod
    def _port(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, int, 1)

    @field_validator("ui_url", mode="after")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip().rstrip("/")
        if "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            # user:password@host would be printed with every link to the UI; the message must not repeat it.
            raise ValueError(f"{_variable(info)} must not hold credentials: set STX_UI_USER and STX_UI_PASSWORD")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{_variable(info)}={value!r} must start with http:// or https://")
        return value

    @field_validator("run_dir", mode="after")
    @classmethod
    def _anchored_dir(cls, value: str | None) -> str | None:
        return anchor(value.strip()) if value else None

    @classmethod
    def from_env(cls) -> Any:
        """Read and validate now; every bad variable is named in one SettingsError."""
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError("; ".join(_describe(error) for error in exc.errors())) from None


class Settings(ServiceSettings):
    """Every STX_* variable of the pipeline."""

    api_url: str = "https://api.hiro.so"
    # None or 0: no own budget; the client paces by the API's advertised limit.
    requests_per_minute: float | None = None
    # Relative paths are read against DAGSTER_HOME (`anchor`).
    duckdb_path: str = "data/wallet_metrics.duckdb"
    start_date: dt.date = STACKS_MAINNET_START
    target_days: int = 180
    public_dir: str = "public/wallet"
    topup_delay_hours: float = 2.0
    days_per_run: int = 5
    # Where the history lives (stx_pipeline.storage.backend): "duckdb" (the file above) or "ducklake".
    storage: Literal["duckdb", "ducklake"] = "duckdb"
    ducklake_catalog: str | None = None  # e.g. "postgres:dbname=lake host=... user=..."
    ducklake_data_path: str = "data/lake"
    # Listing endpoint (stx_pipeline.hiro.strategy): v1 offset paging, v3 cursor paging, or v1 until it answers 410.
    api_strategy: Literal["v1", "v3", "auto"] = "auto"
    # The daily_topup sensor starts running unless off / false / 0 / no.
    daily_topup: bool = True
    # Readers wait this long at most for a writer's DuckDB file lock; DuckLake writers retry commit conflicts this long.
    duckdb_lock_timeout_s: float = 120.0
    write_conflict_timeout_s: float = 300.0
    # `stx-pipeline backfill` asks (or wants --yes) above this many days to fetch: 90 days is ~1.8 h keyless.
    confirm_above_days: int = 90
    # Alerts (stx_pipeline.alerts): a chat webhook (SecretStr: Slack/Discord URLs carry their token), its body
    # format, how often the alert and freshness sensors look, and the UTC hour yesterday must be stored by
    # (unset: STX_TOPUP_DELAY_HOURS + 2).
    alert_webhook_url: SecretStr | None = None
    alert_format: Literal["json", "plain"] = "json"
    alert_interval_s: int = 60
    freshness_deadline_hours: float | None = None
    # freshness_checks_sensor starts running unless off (the tests' dagster dev turn it off like the top-up).
    freshness_sensor: bool = True

    @field_validator("start_date", mode="before")
    @classmethod
    def _date(cls, value: Any, info: ValidationInfo) -> Any:
        value = _text(value)
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{_variable(info)}={value!r} is not a date in YYYY-MM-DD form") from None
        if value < STACKS_MAINNET_START:
            raise ValueError(
                f"{_variable(info)}={value} is before Stacks 2.0 mainnet ({STACKS_MAINNET_START}): no data"
            )
        if value >= dt.datetime.now(dt.UTC).date():
            raise ValueError(f"{_variable(info)}={value} is not in the past: there would be no complete day")
        return value

    @field_validator("target_days", "days_per_run", mode="before")
    @classmethod
    def _at_least_one(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, int, 1)

    @field_validator("alert_interval_s", mode="before")
    @classmethod
    def _seconds(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, int, 5)

    @field_validator("alert_format", mode="before")
    @classmethod
    def _alert_format(cls, value: Any, info: ValidationInfo) -> Any:
        value = str(value).strip().lower()
        if value not in ("json", "plain"):
            raise ValueError(f"{_variable(info)}={value!r} must be json or plain")
        return value

    @field_validator("freshness_deadline_hours", mode="before")
    @classmethod
    def _deadline(cls, value: Any, info: ValidationInfo) -> Any:
        value = _number(value, info, float, 0)
        if value is not None and value > 22:
            # The dashboard's check runs an hour later and must stay within the same UTC day.
            raise ValueError(f"{_variable(info)}={value:g} must be at most 22 (hours after midnight UTC)")
        return value

    @field_validator("confirm_above_days", mode="before")
    @classmethod
    def _whole(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, int, 0)

    @field_validator(
        "requests_per_minute",
        "topup_delay_hours",
        "duckdb_lock_timeout_s",
        "write_conflict_timeout_s",
        mode="before",
    )
    @classmethod
    def _non_negative(cls, value: Any, info: ValidationInfo) -> Any:
        return _number(value, info, float, 0)

    @field_validator("api_url", mode="before")
    @classmethod
    def _api_url(cls, value: Any, info: ValidationInfo) -> Any:
        value = str(value).strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{_variable(info)}={value!r} must start with http:// or https://")
        return value

    @field_validator("storage", "api_strategy", mode="before")
    @classmethod
    def _choice(cls, value: Any, info: ValidationInfo) -> Any:
        value = str(value).strip().lower()
        allowed = STORAGE_BACKENDS if info.field_name == "storage" else API_STRATEGIES
        if value not in allowed:
            raise ValueError(f"{_variable(info)}={value!r} must be one of {', '.join(allowed)}")
        return value

    @field_validator("daily_topup", "freshness_sensor", mode="before")
    @classmethod
    def _switch(cls, value: Any, info: ValidationInfo) -> Any:
        text = str(value).strip().lower()
        if text not in _OFF + _ON:
            raise ValueError(f"{_variable(info)}={value!r} must be on or off")
        return text in _ON

    @field_validator("duckdb_path", "public_dir", "ducklake_data_path", mode="after")
    @classmethod
    def _anchored(cls, value: str) -> str:
        return anchor(value.strip())

    @field_validator("ducklake_catalog", mode="after")
    @classmethod
    def _catalog(cls, value: str | None) -> str | None:
        return value.strip() or None if value else None

    @model_validator(mode="after")
    def _lake_needs_a_catalog(self) -> Settings:
        if self.storage == "ducklake" and not self.ducklake_catalog:
            # No silent default: a file catalog would bring back the single-writer lock DuckLake is chosen to avoid.
            raise ValueError(
                "STX_STORAGE=ducklake needs STX_DUCKLAKE_CATALOG, e.g. "
                "'postgres:dbname=lake host=127.0.0.1 user=postgres'"
            )
        return self

    @classmethod
    def from_env(cls) -> Settings:
        return super().from_env()  # type: ignore[no-any-return]

    @property
    def freshness_deadline(self) -> float:
        """Hours after midnight UTC by which yesterday's partition must be stored (at most 22)."""
        if self.freshness_deadline_hours is not None:
            return self.freshness_deadline_hours
        return min(self.topup_delay_hours + 2.0, 22.0)

    def storage_backend(self) -> Storage:
        """The history these settings point at (STX_STORAGE): the DuckDB file or the DuckLake lake. The code
        location's StorageResource opens the same (stx_pipeline.resources)."""
        from stx_pipeline.storage.backend import open_storage

        return open_storage(
            self.storage,
            duckdb_path=self.duckdb_path,
            ducklake_catalog=self.ducklake_catalog,
            ducklake_data_path=self.ducklake_data_path,
            lock_timeout_s=self.duckdb_lock_timeout_s,
            write_conflict_timeout_s=self.write_conflict_timeout_s,
        )


def _describe(error: Any) -> str:
    """One validation error as the operator should read it: the variable, its value, what is wrong."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])  # our validators' messages already name the variable
    variable = "STX_" + str(error["loc"][0]).upper() if error["loc"] else "environment"
    return f"{variable}={error['input']!r}: {error['msg']}"
