"""Wallet-growth dashboard: metric SQL (`metrics`) apart from HTML rendering (`render`)."""

from stx_pipeline.dashboard.metrics import chain_totals, compute_all
from stx_pipeline.dashboard.models import DashboardData, DashboardResult

__all__ = ["DashboardData", "DashboardResult", "chain_totals", "compute_all"]
