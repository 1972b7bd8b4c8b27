"""One way to rebuild the published dashboard from the DuckDB file: the asset, the CLI and the benchmark share it.

No Dagster import here: `stx-pipeline dashboard` should not pay for `import dagster`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path

import tenacity

from stx_pipeline.dashboard.models import DashboardResult
from stx_pipeline.dashboard.render import write_dashboard
from stx_pipeline.schema import TABLE
from stx_pipeline.storage import is_lock_error, table_exists
from stx_pipeline.storage.aggregates import aggregates_fresh, refresh_stale
from stx_pipeline.storage.backend import Storage, as_storage
from stx_pipeline.storage.duckdb_store import READ_LOCK_TIMEOUT_S

TOTALS_SCRIPT_ID = "stx-totals"
NOT_INGESTED = "no transactions stored yet: backfill first"


class DashboardSourceError(RuntimeError):
    """The database holds nothing to build a dashboard from; the message says what to do."""


def build_dashboard_from_path(
    db_path: Storage | str | os.PathLike[str], public_dir: str | os.PathLike[str], built_at: datetime | None = None
) -> DashboardResult:
    """Bring the per-day aggregates up to date (only days whose raw rows changed since they were built), then
    read `db_path` read-only (waiting through writers' lock windows) and publish `public_dir/index.html`.

    Raises DashboardSourceError when no transaction has been stored yet, rather than publishing an empty page
    over a good one: a missing file or table means the pipeline was pointed at the wrong place or never ran.
    """
    storage = as_storage(db_path)  # a DuckDB file, or the DuckLake lake the settings chose
    if not storage.exists():
        raise DashboardSourceError(f"{NOT_INGESTED} (no database at {storage.describe()}; is STX_DUCKDB_PATH right?)")
    with storage.read_connection() as conn:
        if not table_exists(conn):
            raise DashboardSourceError(f"{NOT_INGESTED} (table {TABLE} does not exist in {storage.describe()})")
        if aggregates_fresh(conn):  # the usual case (the asset refreshed them): the page from this connection
            return write_dashboard(conn, Path(public_dir), built_at, fresh=True)
    refresh_aggregates(storage)
    with storage.read_connection() as conn:
        return write_dashboard(conn, Path(public_dir), built_at)


def refresh_aggregates(storage: Storage) -> list[date]:
    """Bring every missing or stale per-day aggregate up to date (storage.aggregates.refresh_stale), one short
    write transaction per day; returns the days refreshed. A DuckDB file held by a writer is waited for as readers
    wait (STX_DUCKDB_LOCK_TIMEOUT_S): the `hiro_api` pool keeps runs from writing at the same time, this covers the
    CLI beside a run."""
    wait_s = getattr(storage, "lock_timeout_s", READ_LOCK_TIMEOUT_S)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_lock_error),
        wait=tenacity.wait_random_exponential(multiplier=0.05, max=1.0),
        stop=tenacity.stop_after_delay(wait_s),
        reraise=True,
    )

    def attempt() -> list[date]:
        with storage.write_connection() as conn:
            return refresh_stale(conn)

    return retrying(attempt)


@dataclass(frozen=True, slots=True)
class TotalsComparison:
    page: dict[str, object]
    duckdb: dict[str, int]

    @property
    def matches(self) -> bool:
        return all(self.page.get(k) == v for k, v in self.duckdb.items())


class _ScriptText(HTMLParser):
    """Text of the one <script id=...> element, read the way a browser's parser reads it."""

    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self._id = element_id
        self._inside = False
        self.found = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and dict(attrs).get("id") == self._id:
            self._inside = True
            self.found += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.text.append(data)


def page_totals(page: str | os.PathLike[str]) -> dict[str, object]:
    """The stx-totals JSON embedded in a published page."""
    parser = _ScriptText(TOTALS_SCRIPT_ID)
    parser.feed(Path(page).read_text("utf-8"))
    parser.close()
    if parser.found != 1:
        raise ValueError(f"{page}: expected one <script id={TOTALS_SCRIPT_ID!r}>, found {parser.found}")
    value = json.loads("".join(parser.text))
    if not isinstance(value, dict):
        raise ValueError(f"{page}: {TOTALS_SCRIPT_ID} is not a JSON object")
    return value


def compare_page_totals(page: str | os.PathLike[str], db_path: Storage | str | os.PathLike[str]) -> TotalsComparison:
    """The page's totals against `SELECT count(*), sum(fee_ustx)` over every stored row, read-only."""
    with as_storage(db_path).read_connection() as conn:
        row = conn.execute(f"SELECT count(*), coalesce(sum(fee_ustx), 0) FROM {TABLE}").fetchone()
    count, fees = row if row else (0, 0)
    return TotalsComparison(page=page_totals(page), duckdb={"transactions": int(count), "fees_ustx": int(fees)})


__all__ = [
    "NOT_INGESTED",
    "DashboardSourceError",
    "TotalsComparison",
    "build_dashboard_from_path",
    "compare_page_totals",
    "page_totals",
    "refresh_aggregates",
]
