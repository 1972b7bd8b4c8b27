"""Typed results of the dashboard metrics: small structures, cheap to render and to serialise."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from stx_pipeline.days import compact_ranges

USTX_PER_STX = 1_000_000


def ustx_to_stx(ustx: float | int | None) -> float | None:
    return None if ustx is None else ustx / USTX_PER_STX


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which days the stored history holds (by stored daily partition)."""

    first_day: date | None
    last_day: date | None
    days_covered: int
    missing_days: tuple[date, ...]
    newest_tx_at: datetime | None
    row_count: int

    @property
    def is_empty(self) -> bool:
        return self.first_day is None

    @property
    def span_days(self) -> int:
        if self.first_day is None or self.last_day is None:
            return 0
        return (self.last_day - self.first_day).days + 1

    @property
    def missing_ranges(self) -> tuple[str, ...]:
        return tuple(compact_ranges(self.missing_days))


@dataclass(frozen=True, slots=True)
class ChainTotals:
    """Every stored row, all types and statuses: what the asset check compares with DuckDB."""

    transactions: int
    fees_ustx: int

    @property
    def fees_stx(self) -> float:
        return self.fees_ustx / USTX_PER_STX


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """Trailing window of `days` days ending on the as-of day (inclusive)."""

    days: int
    start: date
    end: date
    complete: bool  # False when the window starts before the stored history
    active_wallets: int
    new_wallets: int
    transactions: int  # wallet (user-type, mined) transactions
    successful: int
    fees_ustx: int
    mean_fee_per_wallet_ustx: float | None
    median_fee_per_wallet_ustx: float | None
    retention_cohort_start: date
    retention_cohort_end: date
    retention_cohort_size: int
    retention_30d: float | None  # None when no wallet of the cohort is in the stored history

    @property
    def success_rate(self) -> float | None:
        return self.successful / self.transactions if self.transactions else None


@dataclass(frozen=True, slots=True)
class DailyWallets:
    day: date
    covered: bool  # False on a missing day: the values are unknown (None), not zero
    active: int | None
    new: int | None
    active_ma7: float | None  # mean over the covered days of the trailing 7; None before 7 days of history
    new_ma7: float | None
    mau: int | None  # distinct wallets in the trailing 30 days; None before 30 days of history
    dau_mau: float | None


@dataclass(frozen=True, slots=True)
class PeriodWallets:
    """Distinct active wallets of an ISO week (starts Monday) or a calendar month."""

    start: date
    active: int
    complete: bool  # every day of the period is stored


@dataclass(frozen=True, slots=True)
class CohortCell:
    cohort: date  # Monday of the week of first appearance
    cohort_size: int
    week: int  # k: weeks after the cohort week
    active: int
    share: float


@dataclass(frozen=True, slots=True)
class DayCount:
    """Transactions of one day for one category (tx type or status); all stored rows."""

    day: date
    category: str
    transactions: int


@dataclass(frozen=True, slots=True)
class DayFees:
    day: date
    transactions: int
    fees_ustx: int


@dataclass(frozen=True, slots=True)
class TopSender:
    address: str
    transactions: int
    successful: int
    fees_ustx: int
    active_days: int
    first_seen: date


@dataclass(frozen=True, slots=True)
class TopContract:
    contract_id: str
    calls: int
    successful: int
    callers: int
    fees_ustx: int
    top_function: str | None


@dataclass(frozen=True, slots=True)
class DashboardData:
    coverage: Coverage
    as_of: date | None
    totals: ChainTotals
    summary: list[SummaryRow] = field(default_factory=list)
    daily: list[DailyWallets] = field(default_factory=list)
    weekly: list[PeriodWallets] = field(default_factory=list)
    monthly: list[PeriodWallets] = field(default_factory=list)
    tx_by_type: list[DayCount] = field(default_factory=list)
    tx_by_status: list[DayCount] = field(default_factory=list)
    fees: list[DayFees] = field(default_factory=list)
    cohorts: list[CohortCell] = field(default_factory=list)
    top_senders: list[TopSender] = field(default_factory=list)
    top_contracts: list[TopContract] = field(default_factory=list)
    top_days: int = 30


@dataclass(frozen=True, slots=True)
class DashboardResult:
    path: Path
    size_bytes: int
    first_day: date | None
    last_day: date | None
    days_covered: int
    missing_days: tuple[date, ...]
    headline: dict[str, float | int | None]
