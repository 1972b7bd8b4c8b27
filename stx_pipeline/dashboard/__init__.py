"""Wallet-growth dashboard: metric SQL (`metrics`) apart from HTML rendering (`render`).

from stx_pipeline.dashboard import write_dashboard
result = write_dashboard(conn, Path("site"))  # site/index.html + site/assets/plotly.min.js
"""

from stx_pipeline.dashboard.metrics import chain_totals, compute_all
from stx_pipeline.dashboard.models import DashboardData, DashboardResult
from stx_pipeline.dashboard.render import render_page, write_dashboard

__all__ = ["DashboardData", "DashboardResult", "chain_totals", "compute_all", "render_page", "write_dashboard"]
