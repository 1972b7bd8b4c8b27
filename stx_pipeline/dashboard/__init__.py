"""Wallet-growth dashboard: metric SQL (`metrics`) apart from HTML rendering (`render`).

from stx_pipeline.dashboard import build_dashboard_from_path, write_dashboard
result = build_dashboard_from_path("data/wallet_metrics.duckdb", "public/wallet")  # read-only, lock retry
result = write_dashboard(conn, Path("site"))  # site/index.html, site/value.html + site/assets/plotly-cartesian.min.js
"""

from stx_pipeline.dashboard.build import (
    DashboardSourceError,
    TotalsComparison,
    build_dashboard_from_path,
    compare_page_totals,
    page_totals,
)
from stx_pipeline.dashboard.metrics import chain_totals, compute_all
from stx_pipeline.dashboard.models import DashboardData, DashboardResult
from stx_pipeline.dashboard.render import render_page, write_dashboard

__all__ = [
    "DashboardData",
    "DashboardResult",
    "DashboardSourceError",
    "TotalsComparison",
    "build_dashboard_from_path",
    "chain_totals",
    "compare_page_totals",
    "compute_all",
    "page_totals",
    "render_page",
    "write_dashboard",
]
