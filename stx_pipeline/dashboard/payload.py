"""Chart data for the page: column-oriented (compact) and JSON-ready.

Loops here run over already aggregated results (a few thousand rows at most), never over
transactions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date
from typing import Any

from stx_pipeline.dashboard.models import USTX_PER_STX, CohortCell, DashboardData, DayCount, PeriodWallets


def _num(value: float | int | None, digits: int = 4) -> float | int | None:
    """Round floats so the page stays small; NaN/inf (never expected) become gaps, not bad JSON."""
    if value is None or isinstance(value, int):
        return value
    return round(value, digits) if math.isfinite(value) else None


def _iso(day: date) -> str:
    return day.isoformat()


def _stacked(rows: Iterable[DayCount]) -> dict[str, Any]:
    """Long (day, category, n) rows to one aligned series per category, largest first."""
    rows = list(rows)
    days = sorted({r.day for r in rows})
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[int]] = {}
    for r in rows:
        series.setdefault(r.category, [0] * len(days))[index[r.day]] = r.transactions
    ordered = sorted(series, key=lambda c: (-sum(series[c]), c))
    return {"day": [_iso(d) for d in days], "series": [{"name": c, "y": series[c]} for c in ordered]}


def _periods(rows: list[PeriodWallets]) -> dict[str, Any]:
    return {
        "start": [_iso(r.start) for r in rows],
        "active": [r.active for r in rows],
        "complete": [r.complete for r in rows],
    }


def _cohorts(cells: list[CohortCell]) -> dict[str, Any]:
    """Heatmap matrix: one row per cohort (oldest first), one column per week offset; gaps are null."""
    cohorts = sorted({c.cohort for c in cells})
    width = max((c.week for c in cells), default=-1) + 1
    row_of = {d: i for i, d in enumerate(cohorts)}
    share: list[list[float | None]] = [[None] * width for _ in cohorts]
    active: list[list[int | None]] = [[None] * width for _ in cohorts]
    sizes = [0] * len(cohorts)
    for c in cells:
        i = row_of[c.cohort]
        share[i][c.week] = _num(c.share)  # type: ignore[assignment]
        active[i][c.week] = c.active
        sizes[i] = c.cohort_size
    return {"cohort": [_iso(d) for d in cohorts], "size": sizes, "share": share, "active": active}


def chart_payload(data: DashboardData) -> dict[str, Any]:
    daily = data.daily
    return {
        "daily": {
            "day": [_iso(d.day) for d in daily],
            "active": [d.active for d in daily],
            "new": [d.new for d in daily],
            "active_ma7": [_num(d.active_ma7, 2) for d in daily],
            "new_ma7": [_num(d.new_ma7, 2) for d in daily],
            "mau": [d.mau for d in daily],
            "dau_mau": [_num(d.dau_mau) for d in daily],
        },
        "weekly": _periods(data.weekly),
        "monthly": _periods(data.monthly),
        "tx_by_type": _stacked(data.tx_by_type),
        "tx_by_status": _stacked(data.tx_by_status),
        "fees": {
            "day": [_iso(f.day) for f in data.fees],
            "fees_stx": [_num(f.fees_ustx / USTX_PER_STX, 6) for f in data.fees],
            "mean_fee_stx": [_num(f.fees_ustx / max(f.transactions, 1) / USTX_PER_STX, 6) for f in data.fees],
        },
        "cohorts": _cohorts(data.cohorts),
    }


def totals_payload(data: DashboardData) -> dict[str, Any]:
    """Machine-readable totals (element #stx-totals) that the asset check compares with DuckDB."""
    cov = data.coverage
    return {
        "transactions": data.totals.transactions,
        "fees_ustx": data.totals.fees_ustx,
        "first_day": _iso(cov.first_day) if cov.first_day else None,
        "last_day": _iso(cov.last_day) if cov.last_day else None,
        "days_covered": cov.days_covered,
    }
