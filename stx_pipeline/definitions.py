"""The one entry point of the code location: `defs`."""

from __future__ import annotations

import dagster as dg

from stx_pipeline.assets.dashboard import page_totals_match_duckdb, wallet_dashboard, wallet_dashboard_automation
from stx_pipeline.assets.transactions import stx_transactions
from stx_pipeline.resources import resources_from_env
from stx_pipeline.sensors import daily_topup, topup_policy_from_env
from stx_pipeline.settings import Settings

settings = Settings.from_env()

defs = dg.Definitions(
    assets=[stx_transactions, wallet_dashboard],
    asset_checks=[page_totals_match_duckdb],
    sensors=[daily_topup, wallet_dashboard_automation],
    resources={**resources_from_env(settings), "topup": topup_policy_from_env(settings)},
    # One asset per run: the in-process executor saves the per-step process spawn (~3-5 s a run).
    executor=dg.in_process_executor,
)
