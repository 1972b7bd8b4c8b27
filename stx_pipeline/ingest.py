"""Fetch and store N UTC days: the ingest loop and its error policy, without Dagster.

`ingest_days` lists each day from the API with no database connection open, then writes it in one short
transaction (`replace_day`), and returns what happened as an `IngestResult`. The policy:

- **A bad day costs only that day**: an API error on one day is recorded and the next day is tried.
- **Some errors stop the run**, because no later day can escape them: the quota, a gone endpoint, a refused key
  (401/403), and an API that cannot be reached at all (connection refused, unknown host).
- **An unusable database stops the run before the first request** (`StorageError`): a wrong STX_DUCKDB_PATH
  is found in milliseconds, not after a day's fetch and ~100 s of open retries.
- **Partial success**: days written before a failure stay written; the result says which days were written,
  which failed and which were not attempted, so the caller can report the written ones as materialized.

The `stx_transactions` asset maps the result to Dagster events and checks (stx_pipeline/assets/transactions.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import requests
import urllib3.exceptions

from stx_pipeline.hiro import EndpointGoneError, HiroApiError, HiroClient, QuotaExhaustedError
from stx_pipeline.hiro.backfill_listing import BackfillListing
from stx_pipeline.hiro.client import Logger
from stx_pipeline.hiro.strategy import DayFetcher
from stx_pipeline.storage import StorageError, check_database_path, day_counts, duplicate_tx_ids, is_lock_error
from stx_pipeline.storage import replace_day as store_day
from stx_pipeline.storage.backend import DuckDBFileStorage, Storage
from stx_pipeline.storage.ingest_record import DayListing

# Errors no later day of the run can escape: stop at once instead of trying each day.
STOP_THE_RUN = (EndpointGoneError, QuotaExhaustedError)


@dataclass
class IngestResult:
    """What a run of `ingest_days` did; `failures` empty means every day was written."""

    days: list[dt.date]
    per_day: list[dict[str, Any]] = field(default_factory=list)  # one entry per day written, in order
    api_totals: dict[dt.date, int] = field(default_factory=dict)
    failures: dict[dt.date, HiroApiError] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)  # the client's requests, retries, 429s, notices
    api_strategy: str = ""
    switched_to_v3: bool = False
    first_burn_block_time: int | None = None
    last_burn_block_time: int | None = None
    seconds: float = 0.0
    # Read back after a run without failures: rows stored per day, tx_ids stored twice within the run's reach.
    stored: dict[dt.date, int] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def rows(self) -> int:
        return sum(self.api_totals.values())

    @property
    def written_days(self) -> list[str]:
        return [entry["day"] for entry in self.per_day]

    @property
    def not_attempted(self) -> list[dt.date]:
        written = set(self.written_days)
        return [d for d in self.days if d not in self.failures and d.isoformat() not in written]

    @property
    def mismatched(self) -> dict[str, dict[str, int]]:
        """Days whose stored row count differs from the API's total."""
        return {
            d.isoformat(): {"stored": self.stored.get(d, 0), "api_total": total}
            for d, total in self.api_totals.items()
            if self.stored.get(d, 0) != total
        }

    def failure_summary(self) -> str:
        first_day, first_error = next(iter(self.failures.items()))
        skipped = self.not_attempted
        return (
            f"{len(self.failures)} of {len(self.days)} days failed; nothing of those days was written "
            f"(days written in this run are kept and marked materialized). First: partition {first_day}: "
            f"{first_error}"
            + (f" Not attempted after it: {', '.join(d.isoformat() for d in skipped)}." if skipped else "")
        )


def api_unreachable(exc: BaseException) -> bool:
    """Connection refused or an unknown host (DNS) behind a failed request: STX_API_URL is wrong or the API is
    down, so every later day of the run would spend its retries (~40 s) on the same error.

    Only a failure to open the connection counts; a reset or truncated answer mid-run is the network's, and the
    next day may well succeed.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.ConnectionError) and not isinstance(seen, requests.Timeout):
            reason = getattr(seen.args[0], "reason", None) if seen.args else None
            # urllib3: NameResolutionError (DNS) is a NewConnectionError, as is "connection refused".
            return isinstance(reason, urllib3.exceptions.NewConnectionError)
        seen = seen.__cause__ or seen.__context__
    return False


def check_writable(storage: Storage) -> None:
    """Raise StorageError when the DuckDB file's path cannot hold the database (a directory, a path under a file,
    a read-only directory, a foreign file). A file locked by another process is not checked: that one is waited
    for. A lake is checked when the first day is written."""
    if isinstance(storage, DuckDBFileStorage):
        try:
            check_database_path(storage.path)
        except StorageError as exc:
            raise StorageError(_open_error(storage.path, exc)) from exc


@contextmanager
def write_connection(storage: Storage) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection, closed even when the write fails; failing to open it is a
    StorageError saying what to do (the file is never touched)."""
    is_file = isinstance(storage, DuckDBFileStorage)
    with ExitStack() as stack:
        try:
            if is_file:
                check_database_path(storage.path)
            conn = stack.enter_context(storage.write_connection())
            # One thread for a day's insert: a second one speeds it little and doubles DuckDB's buffers.
            conn.execute("SET threads = 1")
        except (StorageError, duckdb.Error, OSError) as exc:
            raise StorageError(_open_error(storage.path, exc) if is_file else str(exc)) from exc
        yield conn


def _open_error(path: str, exc: BaseException) -> str:
    parent = Path(path).parent
    if isinstance(exc, StorageError):
        text = str(exc)
    elif parent.exists() and not parent.is_dir():
        text = f"cannot create {path}: {parent} is a file, not a directory"
    elif is_lock_error(exc):
        return (
            f"cannot write to {path}: another process holds it ({exc}). Stop the process that keeps the file "
            "open (a stray `duckdb` shell or notebook), then re-run the failed days."
        )
    else:
        text = f"cannot open {path} for writing: {exc}"
    return (
        f"{text}. Nothing was written; a file already there is left as it is. Check STX_DUCKDB_PATH: restore "
        "the file from a backup or move it aside (a new one is then created), and make sure its directory is "
        "writable; then re-run the failed days."
    )


def read_back(conn: duckdb.DuckDBPyConnection, result: IngestResult) -> None:
    """The run's checks: rows stored per day, and tx_ids stored twice over the run's days and their reorg reach."""
    result.stored = day_counts(conn, result.days)
    result.duplicates = duplicate_tx_ids(conn, result.days)


def ingest_days(
    days: list[dt.date],
    client: HiroClient,
    fetcher: DayFetcher,
    storage: Storage,
    log: Logger,
    shared: BackfillListing | None = None,
) -> IngestResult:
    """Fetch and write `days` in order under the policy above. Raises StorageError when the history cannot be
    opened for writing (before the first request when the path is unusable); API errors end up in `failures`.
    `shared`: the in-process backfill this run belongs to (its days come from the listing of the whole plan, the
    next run's first day listed while this run ends); `client` and `fetcher` are then its."""
    started = time.monotonic()
    result = IngestResult(days=list(days))
    check_writable(storage)
    # Days are listed one ahead on the shared pacer while the previous one is written (DayFetcher.fetch_days);
    # leaving the loop (a stop, a failed write) gives up the day listed ahead before its next request.
    with shared.take(days, log) if shared is not None else closing(fetcher.fetch_days(days)) as listings:
        for day, outcome in listings:
            if isinstance(outcome, HiroApiError):
                exc = outcome
                unreachable = api_unreachable(exc)
                if unreachable:
                    exc = HiroApiError(
                        f"{exc} The API at {client.base_url} cannot be reached (connection refused or unknown "
                        "host): check STX_API_URL (and that the API or simulator is running); the run stops here.",
                        status=exc.status,
                        endpoint=exc.endpoint,
                    )
                result.failures[day] = exc
                log.error(f"partition {day}: {exc}")
                if isinstance(exc, STOP_THE_RUN) or exc.status in (401, 403) or unreachable:
                    break  # the key, the quota, the endpoint or the address: no later day can succeed either
                continue  # a bad day must not cost the other days of the run
            fetched = outcome
            write_started = time.monotonic()
            with write_connection(storage) as conn:
                listing = DayListing(fetched.total, fetched.strategy, fetched.pages, fetched.requests)
                store_day(
                    conn, day, fetched.table, conflict_timeout_s=storage.write_conflict_timeout_s, listing=listing
                )
                write_s = time.monotonic() - write_started
                if day == days[-1] and not result.failures:
                    # The run's last day, every day written (days come in order): the checks read back on this
                    # connection, not a new one — an open and a close less between this run's last request and
                    # the next run's first.
                    read_back(conn, result)
            result.api_totals[day] = fetched.total
            if result.first_burn_block_time is None:
                result.first_burn_block_time = fetched.first_burn_block_time
            result.last_burn_block_time = fetched.last_burn_block_time or result.last_burn_block_time
            result.per_day.append(
                {
                    "day": day.isoformat(),
                    "rows": fetched.total,
                    "pages": fetched.pages,
                    "strategy": fetched.strategy,
                    "requests": fetched.requests,
                    "fetch_s": round(fetched.seconds, 2),
                    "write_s": round(write_s, 3),
                }
            )
            log.info(
                f"{day}: {fetched.total} transactions in {fetched.pages} pages, "
                f"fetched in {fetched.seconds:.1f}s, written in {write_s:.2f}s"
            )
    result.stats = shared.run_stats() if shared is not None else client.stats.snapshot()
    result.api_strategy = fetcher.active
    result.switched_to_v3 = fetcher.switched_to_v3
    result.seconds = time.monotonic() - started
    return result
