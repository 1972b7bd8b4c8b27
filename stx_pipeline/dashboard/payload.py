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
from stx_pipeline.dashboard.value import CohortValue, FeeBin, ValueData
from stx_pipeline.schema import USER_TX_TYPES


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
        y = series.get(r.category)
        if y is None:  # not setdefault: that built a list of every day for each row (0.65 s at 2,150 days)
            y = series[r.category] = [0] * len(days)
        y[index[r.day]] = r.transactions
    ordered = sorted(series, key=lambda c: (-sum(series[c]), c))
    return {"day": [_iso(d) for d in days], "series": [{"name": c, "y": series[c]} for c in ordered]}


def _periods(rows: list[PeriodWallets]) -> dict[str, Any]:
    return {
        "start": [_iso(r.start) for r in rows],
        "active": [r.active for r in rows],
        "complete": [r.complete for r in rows],
    }


def _cohorts(cells: list[CohortCell], first_day: date | None) -> dict[str, Any]:
    """Heatmap matrix: one row per cohort (oldest first), one column per week offset from 1; gaps are null.

    Week 0 is left out (every wallet of a cohort is active in it by construction: 100 % says nothing), and so is
    a cohort whose week starts before the stored history: its first days are missing, so it is not a cohort.
    A cohort too young to have a complete week after its own has no cell and no row.
    """
    kept = [c for c in cells if c.week >= 1 and (first_day is None or c.cohort >= first_day)]
    sized = {c.cohort: c.cohort_size for c in kept}
    cohorts = sorted(sized)
    width = max((c.week for c in kept), default=0)
    row_of = {d: i for i, d in enumerate(cohorts)}
    share: list[list[float | None]] = [[None] * width for _ in cohorts]
    active: list[list[int | None]] = [[None] * width for _ in cohorts]
    for c in kept:
        i = row_of[c.cohort]
        share[i][c.week - 1] = _num(c.share)
        active[i][c.week - 1] = c.active
    return {
        "cohort": [_iso(d) for d in cohorts],
        "size": [sized[d] for d in cohorts],
        "week": list(range(1, width + 1)),
        "share": share,
        "active": active,
    }


def _series_flags(stacked: dict[str, Any]) -> dict[str, Any]:
    """Marks miners' system transaction types so the chart can leave them hidden by default."""
    for s in stacked["series"]:
        s["system"] = s["name"] not in USER_TX_TYPES
    # User types first (stacked at the bottom), then by volume.
    stacked["series"].sort(key=lambda s: s["system"])
    return stacked


def _empty_reasons(data: DashboardData) -> dict[str, str]:
    """What a card says instead of a chart when the history is too short for it (not a bare "No data")."""
    days = data.coverage.span_days
    return {
        "dau_mau_empty": (
            f"DAU / MAU needs 30 days of history (MAU counts the trailing 30 days); {days} "
            f"{'day is' if days == 1 else 'days are'} stored, so the first ratio appears on day 30."
            if days < 30
            else "No wallet was active in the stored history: DAU / MAU has nothing to divide."
        ),
        "cohorts_empty": (
            "No cohort has a complete stored week after its own yet: the first cell appears once a cohort week "
            "that starts inside the history is followed by a fully stored week."
        ),
    }


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
        "tx_by_type": _series_flags(_stacked(data.tx_by_type)),
        "tx_by_status": _stacked(data.tx_by_status),
        "fees": {
            "day": [_iso(f.day) for f in data.fees],
            "fees_stx": [_num(f.fees_ustx / USTX_PER_STX, 6) for f in data.fees],
            "mean_fee_stx": [_num(f.fees_ustx / max(f.transactions, 1) / USTX_PER_STX, 6) for f in data.fees],
        },
        "cohorts": _cohorts(data.cohorts, data.coverage.first_day),
        **_empty_reasons(data),
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


def _stx_of(ustx: float | int | None) -> float | None:
    return None if ustx is None else _num(ustx / USTX_PER_STX, 6)  # type: ignore[return-value]


def _cohort_label(c: CohortValue, period: str) -> str:
    return c.cohort.strftime("%Y-%m") if period == "month" else _iso(c.cohort)


def value_payload(v: ValueData) -> dict[str, Any]:
    """Chart data of the value page (amounts in STX); every list is aligned with its axis list."""
    cohorts = list(v.cohorts)
    labels = [_cohort_label(c, v.period) for c in cohorts]
    fees: dict[str, list[float | None]] = {}
    for i, h in enumerate(v.horizons):
        fees[f"mean_{h}"] = [_stx_of(c.fees[i].mean_ustx) for c in cohorts]
        fees[f"median_{h}"] = [_stx_of(c.fees[i].median_ustx) for c in cohorts]
    bins = list(v.fee_histogram)
    days = list(v.days)
    return {
        "period": v.period,
        "horizons": list(v.horizons),
        "retention_days": list(v.retention_days),
        "cohorts": {
            "label": labels,
            "size": [c.new for c in cohorts],
            "new": [c.new for c in cohorts],
            "funded": [c.funded for c in cohorts],
            "active": [c.active for c in cohorts],
            "value": [c.value for c in cohorts],
            "retention": [[_num(s) for s in c.retention] for c in cohorts],
            **fees,
        },
        "histogram": {
            "label": [_bin_label(b) for b in bins],
            "wallets": [b.wallets for b in bins],
        },
        "curves": [
            {"segment": r.segment, "share": [_num(s) for s in r.share], "wallets": list(r.wallets)} for r in v.retention
        ],
        "days": {
            "day": [_iso(d.day) for d in days],
            "network_fee_stx": [_stx_of(d.network_fee_ustx) for d in days],
            "trailing_30_fee_stx": [_stx_of(d.trailing_30_fee_ustx) for d in days],
            "sponsored_share": [_num(d.sponsored_share) for d in days],
            "failed_rate": [_num(d.failed_rate) for d in days],
            "new": [d.new_wallets for d in days],
            "returning": [d.returning_wallets for d in days],
            "stx_transferred": [_stx_of(d.stx_transferred_ustx) for d in days],
        },
    }


def _stx_text(ustx: int) -> str:
    stx = ustx / USTX_PER_STX
    return f"{stx:g}"


def _bin_label(b: FeeBin) -> str:
    """'0', '< 0.001', '0.001 to 0.01' (en dash), ..., '≥ 10' STX."""
    if b.hi_ustx == 0:
        return "0"
    if b.hi_ustx is None:
        return f"≥ {_stx_text(b.lo_ustx)}"
    if b.lo_ustx <= 1:
        return f"< {_stx_text(b.hi_ustx)}"
    return f"{_stx_text(b.lo_ustx)}\u2013{_stx_text(b.hi_ustx)}"
