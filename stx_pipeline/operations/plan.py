"""Which days of a window need fetching: the instance's partition statuses checked against DuckDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stx_pipeline.storage import StorageError, day_counts
from stx_pipeline.storage.backend import open_storage

MATERIALIZED = "MATERIALIZED"
FAILED = "FAILED"
IN_PROGRESS = "IN_PROGRESS"
MISSING = "MISSING"

# GraphQL says MATERIALIZING where the Python API says IN_PROGRESS.
_ALIASES = {"MATERIALIZING": IN_PROGRESS}


def normalise(status: str | None) -> str:
    if status is None:
        return MISSING
    return _ALIASES.get(status, status)


@dataclass(frozen=True)
class DayPlan:
    window: list[dt.date]
    statuses: dict[dt.date, str]  # per day: MATERIALIZED / FAILED / IN_PROGRESS / MISSING
    stored_rows: dict[dt.date, int] | None  # None when the database cannot be read (no file yet)
    requested: list[dt.date]
    in_progress: list[dt.date]

    def days_with(self, status: str) -> list[dt.date]:
        return [d for d in self.window if self.statuses[d] == status]


def stored_rows_by_day(db_path: str | Path, days: Iterable[dt.date]) -> dict[dt.date, int] | None:
    try:
        with open_storage(db_path).read_connection() as conn:
            return day_counts(conn, days)
    except StorageError:
        return None


def plan_days(
    window: list[dt.date],
    statuses: Mapping[dt.date, str | None],
    stored_rows: Mapping[dt.date, int] | None,
    *,
    force: bool = False,
) -> DayPlan:
    """Days to request: missing or failed in the instance, or materialized there but absent from DuckDB
    (a deleted or replaced database file). Days being materialized right now are left to their run."""
    per_day = {d: normalise(statuses.get(d)) for d in window}
    for day in window:
        if per_day[day] == MATERIALIZED and stored_rows is not None and stored_rows.get(day, 0) == 0:
            per_day[day] = MISSING
    in_progress = [d for d in window if per_day[d] == IN_PROGRESS]
    if force:
        requested = [d for d in window if per_day[d] != IN_PROGRESS]
    else:
        requested = [d for d in window if per_day[d] in (MISSING, FAILED)]
    return DayPlan(
        window=window,
        statuses=per_day,
        stored_rows=dict(stored_rows) if stored_rows is not None else None,
        requested=requested,
        in_progress=in_progress,
    )
