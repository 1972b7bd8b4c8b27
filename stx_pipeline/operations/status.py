"""`stx-pipeline status`: what is stored, what the target window still lacks, what the last backfill did.

Fast on purpose: the storage part comes from DuckDB's per-day ingest record (storage.ingest_record: one row per
day, so milliseconds at any history size); the instance part comes from the webserver's GraphQL when it answers,
and from the Python instance only when asked (`--instance`: importing dagster and opening the instance cost ~2.5 s).
DuckDB's record is the truth for "stored"; the instance adds failed / in-progress days and the latest backfill.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stx_pipeline.alerts import status_lines, status_summary
from stx_pipeline.days import ASSET_NAME, ASSET_PATH, compact_ranges, days_between, last_complete_day
from stx_pipeline.operations.window import expand_status_ranges
from stx_pipeline.planning import FAILED, IN_PROGRESS, MATERIALIZED, normalise, with_pending
from stx_pipeline.schema import TABLE, USER_TX_TYPES
from stx_pipeline.settings import ServiceSettings, Settings, dagster_home
from stx_pipeline.storage import StorageError, table_exists
from stx_pipeline.storage.aggregates import first_seen_wallets
from stx_pipeline.storage.backend import DuckDBFileStorage, Storage, as_storage
from stx_pipeline.storage.ingest_record import read_records, record_exists, record_summary

if TYPE_CHECKING:
    from stx_pipeline.operations.webserver import DagsterWebserver

EXIT_COMPLETE = 0
EXIT_ERROR = 1
EXIT_INCOMPLETE = 2


@dataclass
class StatusReport:
    database: str
    database_bytes: int | None
    total_transactions: int = 0
    unique_wallets: int | None = 0  # None: not known yet (the per-day aggregates have not been built)
    earliest_transaction: str | None = None
    latest_transaction: str | None = None
    target_days: int = 0
    target_start: str = ""
    target_end: str = ""
    days_covered: int = 0
    coverage_percent: float = 0.0
    missing_in_storage: list[str] = field(default_factory=list)
    instance_source: str | None = None  # "webserver", "instance" or None
    days_materialized: int | None = None
    days_failed: list[str] | None = None
    days_in_progress: list[str] | None = None
    days_missing: list[str] | None = None
    materialized_not_in_duckdb: list[str] | None = None
    latest_backfill: dict[str, Any] | None = None
    instance_note: str | None = None  # why the instance part is absent (no webserver, not asked to read it)
    error: str | None = None
    # Where this shell's configuration differs from the running code location's (`configuration_drift`): the
    # instance part then describes another database than the DuckDB part (e.g. `make status` beside `make demo`).
    warnings: list[str] = field(default_factory=list)
    # Freshness verdicts and the last alert, as the stx_alerts sensor recorded them (stx_pipeline.alerts).
    alerts: dict[str, Any] | None = None
    last_write: str | None = None  # when the newest day of the window was written (the ingest record's fetched_at)
    _covered: set[dt.date] = field(default_factory=set, repr=False)  # days with rows in DuckDB

    @property
    def complete(self) -> bool:
        storage_complete = self.days_covered == self.target_days
        instance_clean = not (
            self.days_failed or self.days_in_progress or self.days_missing or self.materialized_not_in_duckdb
        )
        return storage_complete and instance_clean

    @property
    def exit_code(self) -> int:
        if self.error:
            return EXIT_ERROR
        return EXIT_COMPLETE if self.complete else EXIT_INCOMPLETE

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_covered")
        data["complete"] = self.complete
        return data


def _storage_part(report: StatusReport, window: list[dt.date], storage: Storage) -> None:
    with storage.read_connection() as conn:
        if not table_exists(conn):
            report.missing_in_storage = compact_ranges(window)
            return
        if record_exists(conn):
            # The per-day ingest record: a few thousand rows at most, so the same cost at any history size.
            total, earliest, latest = record_summary(conn)
            records = read_records(conn, window[0], window[-1])
            covered = {day for day, rec in records.items() if rec["rows"] > 0}
            written = [rec["fetched_at"] for rec in records.values() if rec.get("fetched_at")]
            if written:
                report.last_write = max(written).astimezone(dt.UTC).isoformat(timespec="seconds")
            wallets = first_seen_wallets(conn)
        else:
            # A database no writer has touched since the record was added (it is made on the next write):
            # the old scan of the whole table.
            placeholders = ", ".join("?" for _ in USER_TX_TYPES)
            total, wallets, earliest, latest = conn.execute(
                f"SELECT count(*), count(DISTINCT sender_address) FILTER (WHERE tx_type IN ({placeholders})), "
                f"min(burn_block_time), max(burn_block_time) FROM {TABLE}",
                list(USER_TX_TYPES),
            ).fetchone()
            covered = {
                row[0]
                for row in conn.execute(
                    f"SELECT DISTINCT partition_date FROM {TABLE} WHERE partition_date >= ? AND partition_date <= ?",
                    [window[0], window[-1]],
                ).fetchall()
            }
    report.total_transactions = int(total)
    report.unique_wallets = None if wallets is None else int(wallets)
    report.earliest_transaction = earliest.astimezone(dt.UTC).isoformat() if earliest else None
    report.latest_transaction = latest.astimezone(dt.UTC).isoformat() if latest else None
    report.days_covered = len(covered)
    report._covered = covered
    report.missing_in_storage = compact_ranges(d for d in window if d not in covered)


def _apply_statuses(report: StatusReport, window: list[dt.date], statuses: Mapping[dt.date, str | None]) -> None:
    per_day = {d: normalise(statuses.get(d)) for d in window}
    report.days_materialized = sum(1 for d in window if per_day[d] == MATERIALIZED)
    report.days_failed = compact_ranges(d for d in window if per_day[d] == FAILED)
    report.days_in_progress = compact_ranges(d for d in window if per_day[d] == IN_PROGRESS)
    report.days_missing = compact_ranges(d for d in window if per_day[d] not in (MATERIALIZED, FAILED, IN_PROGRESS))
    if report.error is None:
        # Materialized in the instance, absent from DuckDB: the next backfill (and the top-up) fetch them again.
        report.materialized_not_in_duckdb = compact_ranges(
            d for d in window if per_day[d] == MATERIALIZED and d not in report._covered
        )


@dataclass(frozen=True)
class InstanceView:
    statuses: dict[dt.date, str | None]
    latest_backfill: dict[str, Any] | None
    source: str  # "webserver" or "instance"


def read_instance(
    window: list[dt.date], web: DagsterWebserver | None = None, *, direct: bool = True
) -> InstanceView | None:
    """Partition statuses from the webserver's GraphQL when it is up (fast), else from the instance at
    DAGSTER_HOME (imports dagster, ~2.5 s); None when no instance has run here yet. Days an unfinished backfill
    targets count as in progress before their runs exist. `direct=False`: the webserver or nothing."""
    if web is None:
        url = ServiceSettings.from_env().ui_url
        # A TCP connect first: when nothing listens there (the webserver is down), status answers without
        # importing requests and urllib3 (~0.2-0.3 s of the command) only to learn that.
        if _listening(url):
            from stx_pipeline.operations.webserver import DagsterWebserver

            web = DagsterWebserver(url, timeout_s=5.0)
    if web is not None and web.is_up():
        from stx_pipeline.operations.webserver import WebserverAuthError, WebserverError

        try:
            pending = {dt.date.fromisoformat(k) for k in web.pending_backfill_days(ASSET_PATH)}
            statuses = with_pending(expand_status_ranges(web.partition_ranges(ASSET_PATH)), pending)
            return InstanceView(statuses, web.latest_backfill(), "webserver")
        except WebserverAuthError:
            raise  # the proxy wants a login: say what to set rather than read some other instance
        except WebserverError:
            pass
    if not direct:
        return None
    home = dagster_home()
    if home is None or not (home / ".dagster" / "storage").exists():
        return None
    import dagster as dg

    from stx_pipeline.partitions import day_statuses, pending_backfill_days

    with dg.DagsterInstance.get() as instance:
        key = dg.AssetKey(ASSET_NAME)
        statuses = with_pending(day_statuses(instance, key, window), pending_backfill_days(instance, key))
        backfills = instance.get_backfills(limit=1)
    latest = None
    if backfills:
        b = backfills[0]
        latest = {"id": b.backfill_id, "status": b.status.value, "timestamp": b.backfill_timestamp}
    return InstanceView(statuses, latest, "instance")


def configuration_warnings(settings: Settings) -> list[str]:
    """`configuration_drift` against the webserver at STX_UI_URL (called only once it answered)."""
    from stx_pipeline.operations.backfill import configuration_drift
    from stx_pipeline.operations.webserver import DagsterWebserver

    return configuration_drift(DagsterWebserver(ServiceSettings.from_env().ui_url, timeout_s=5.0), settings)


def _listening(url: str, timeout_s: float = 0.5) -> bool:
    """Whether anything accepts a TCP connection at the URL's host and port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _instance_part(report: StatusReport, window: list[dt.date], direct: bool) -> None:
    view = read_instance(window, direct=direct)
    if view is None:
        if not direct and (home := dagster_home()) is not None and (home / ".dagster" / "storage").exists():
            url = ServiceSettings.from_env().ui_url
            report.instance_note = (
                f"not read: no webserver answers at {url}; DuckDB's ingest record above is what is "
                "stored. `stx-pipeline status --instance` reads the instance directly (imports Dagster, ~2.5 s)."
            )
        return
    _apply_statuses(report, window, view.statuses)
    report.latest_backfill = view.latest_backfill
    report.instance_source = view.source


def build_report(
    db_path: Storage | str,
    target_days: int,
    *,
    with_instance: bool = True,
    direct_instance: bool = False,
    now: dt.datetime | None = None,
    window: list[dt.date] | None = None,
) -> StatusReport:
    """`window`: the validated window (operations.window.target_window); default the `target_days` ending yesterday."""
    if window is None:
        end = last_complete_day(now)
        window = days_between(end - dt.timedelta(days=target_days - 1), end)
    target_days = len(window)
    storage = as_storage(db_path)  # a DuckDB file (no extension loaded), or the DuckLake lake the settings chose
    is_file = isinstance(storage, DuckDBFileStorage)
    path = Path(storage.path) if is_file else Path()
    report = StatusReport(
        database=str(path.resolve()) if is_file else storage.describe(),
        database_bytes=path.stat().st_size if is_file and path.is_file() else None,
        target_days=target_days,
        target_start=window[0].isoformat(),
        target_end=window[-1].isoformat(),
    )
    if with_instance:
        report.alerts = status_summary(dagster_home())
    try:
        if storage.exists():
            _storage_part(report, window, storage)
        else:
            report.missing_in_storage = compact_ranges(window)
    except StorageError as exc:
        report.error = str(exc)
        return report
    report.coverage_percent = round(100.0 * report.days_covered / target_days, 1)
    if with_instance:
        try:
            _instance_part(report, window, direct_instance)
        except Exception as exc:  # the storage part is still worth printing
            report.error = f"could not read the Dagster instance: {exc}"
    return report


def _size(num: int | None) -> str:
    if num is None:
        return "no file yet"
    size = float(num)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.1f} {unit}" if unit != "B" else f"{num} B"
        size /= 1024
    return f"{num} B"


def render_text(report: StatusReport) -> str:
    lines = [
        f"Database:            {report.database} ({_size(report.database_bytes)})",
        f"Transactions:        {report.total_transactions:,}",
        "Unique wallets:      "
        + ("- (build the dashboard to count them)" if report.unique_wallets is None else f"{report.unique_wallets:,}"),
        f"Earliest (UTC):      {report.earliest_transaction or '-'}",
        f"Latest (UTC):        {report.latest_transaction or '-'}",
        f"Target:              {report.target_days} days, {report.target_start} .. {report.target_end}",
        f"Coverage:            {report.days_covered}/{report.target_days} days ({report.coverage_percent:.1f}%)",
    ]
    if report.missing_in_storage:
        lines.append(f"Not in DuckDB:       {', '.join(report.missing_in_storage)}")
    if report.instance_source:
        lines += [
            f"Instance ({report.instance_source}):",
            f"  materialized:      {report.days_materialized}"
            + (
                f" (not in DuckDB: {', '.join(report.materialized_not_in_duckdb)}; a backfill fetches them again)"
                if report.materialized_not_in_duckdb
                else ""
            ),
            f"  missing:           {', '.join(report.days_missing or []) or 'none'}",
            f"  failed:            {', '.join(report.days_failed or []) or 'none'}",
            f"  in progress:       {', '.join(report.days_in_progress or []) or 'none'}",
        ]
        if report.latest_backfill:
            b = report.latest_backfill
            lines.append(f"  latest backfill:   {b.get('id')} ({b.get('status')})")
    if report.instance_note:
        lines.append(f"Instance:            {report.instance_note}")
    lines += [f"Warning:             {warning}" for warning in report.warnings]
    if report.alerts is not None:
        lines += status_lines(report.alerts, report.last_write)
    if report.error:
        lines.append(f"Error:               {report.error}")
    state = "complete" if report.exit_code == EXIT_COMPLETE else ("error" if report.error else "incomplete")
    lines.append(f"Status:              {state}")
    return "\n".join(lines)
