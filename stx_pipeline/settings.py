"""Configuration from the environment: one place that reads and validates every STX_* variable.

No Dagster import here: the CLI's fast commands (status) read settings too.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

STACKS_MAINNET_START = dt.date(2021, 1, 14)


class SettingsError(ValueError):
    """An environment variable has a value that cannot be used."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _int_env(name: str, default: int, minimum: int) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def _float_env(name: str, default: float, minimum: float) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def _date_env(name: str, default: dt.date) -> dt.date:
    raw = _env(name, default.isoformat())
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a date in YYYY-MM-DD form") from None


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


def daily_topup_on() -> bool:
    """STX_DAILY_TOPUP: the daily_topup sensor starts running unless it is off / false / 0 / no."""
    return os.environ.get("STX_DAILY_TOPUP", "on").strip().lower() not in ("off", "false", "0", "no")


@dataclass(frozen=True)
class Settings:
    api_url: str
    requests_per_minute: float | None  # None or 0: no own budget; the client paces by the API's advertised limit
    duckdb_path: str
    start_date: dt.date
    target_days: int
    public_dir: str
    topup_delay_hours: float
    days_per_run: int
    # Where the history lives (stx_pipeline.storage.backend): "duckdb" (the file above) or "ducklake".
    storage: str = "duckdb"
    ducklake_catalog: str | None = None  # e.g. "postgres:dbname=lake host=... user=..."
    ducklake_data_path: str = "data/lake"
    # Listing endpoint (stx_pipeline.hiro.strategy): v1 offset paging, v3 cursor paging, or v1 until it answers 410.
    api_strategy: str = "auto"

    @classmethod
    def from_env(cls) -> Settings:
        start = _date_env("STX_START_DATE", STACKS_MAINNET_START)
        if start < STACKS_MAINNET_START:
            raise SettingsError(
                f"STX_START_DATE={start} is before Stacks 2.0 mainnet ({STACKS_MAINNET_START}): no data"
            )
        if start >= dt.datetime.now(dt.UTC).date():
            raise SettingsError(f"STX_START_DATE={start} is not in the past: there would be no complete day")
        api_url = _env("STX_API_URL", "https://api.hiro.so").rstrip("/")
        if not api_url.startswith(("http://", "https://")):
            raise SettingsError(f"STX_API_URL={api_url!r} must start with http:// or https://")
        rpm_raw = os.environ.get("STX_REQUESTS_PER_MINUTE", "").strip()
        storage, ducklake_catalog, ducklake_data_path = storage_env()
        return cls(
            api_url=api_url,
            requests_per_minute=_float_env("STX_REQUESTS_PER_MINUTE", 0, 0) if rpm_raw else None,
            duckdb_path=anchor(_env("STX_DUCKDB_PATH", "data/wallet_metrics.duckdb")),
            start_date=start,
            target_days=_int_env("STX_TARGET_DAYS", 180, 1),
            public_dir=anchor(_env("STX_PUBLIC_DIR", "public/wallet")),
            topup_delay_hours=_float_env("STX_TOPUP_DELAY_HOURS", 2.0, 0.0),
            days_per_run=_int_env("STX_DAYS_PER_RUN", 5, 1),
            storage=storage,
            ducklake_catalog=ducklake_catalog,
            ducklake_data_path=ducklake_data_path,
            api_strategy=_api_strategy_env(),
        )


API_STRATEGIES = ("v1", "v3", "auto")


def _api_strategy_env() -> str:
    strategy = _env("STX_API_STRATEGY", "auto").lower()
    if strategy not in API_STRATEGIES:
        raise SettingsError(f"STX_API_STRATEGY={strategy!r} must be one of {', '.join(API_STRATEGIES)}")
    return strategy


STORAGE_BACKENDS = ("duckdb", "ducklake")


def storage_env() -> tuple[str, str | None, str]:
    """(STX_STORAGE, STX_DUCKLAKE_CATALOG, STX_DUCKLAKE_DATA_PATH), validated; readers use it without the rest."""
    storage = _env("STX_STORAGE", "duckdb").lower()
    if storage not in STORAGE_BACKENDS:
        raise SettingsError(f"STX_STORAGE={storage!r} must be one of {', '.join(STORAGE_BACKENDS)}")
    catalog = _env("STX_DUCKLAKE_CATALOG", "") or None
    if storage == "ducklake" and not catalog:
        # No silent default: a file catalog would bring back the single-writer lock DuckLake is chosen to avoid.
        raise SettingsError(
            "STX_STORAGE=ducklake needs STX_DUCKLAKE_CATALOG, e.g. 'postgres:dbname=lake host=127.0.0.1 user=postgres'"
        )
    return storage, catalog, anchor(_env("STX_DUCKLAKE_DATA_PATH", "data/lake"))
