"""The one entry point of the code location: `defs`, built from the settings when Dagster loads it.

Importing this module reads no configuration. `defs` is a lazy `@dg.definitions` function: Dagster calls it when
it loads the code location (`dagster dev`, `dagster definitions validate`, a gRPC code server), so a bad STX_*
value shows as that code location's load error naming the variable, and `build_definitions` gives tests and
the CLI's in-process backfill the same wiring from settings they choose.
"""

from __future__ import annotations

import dagster as dg

from stx_pipeline.alert_sensors import (
    alert_config_from_env,
    build_alert_sensor,
    build_freshness_checks,
    build_freshness_sensor,
)
from stx_pipeline.assets.aggregates import build_wallet_day_activity, wallet_day_activity_automation
from stx_pipeline.assets.dashboard import page_totals_match_duckdb, wallet_dashboard, wallet_dashboard_automation
from stx_pipeline.assets.transactions import build_stx_transactions
from stx_pipeline.partitions import daily_partitions
from stx_pipeline.resources import resources_from_env
from stx_pipeline.sensors import build_daily_topup, topup_policy_from_env
from stx_pipeline.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Assets, checks, sensors and resources configured by `settings`."""
    partitions = daily_partitions(settings.start_date)
    transactions = build_stx_transactions(partitions, settings.days_per_run)
    activity = build_wallet_day_activity(partitions, settings.days_per_run)
    freshness = build_freshness_checks(settings)
    return dg.Definitions(
        assets=[transactions, activity, wallet_dashboard],
        asset_checks=[page_totals_match_duckdb, *freshness],
        sensors=[
            build_daily_topup(running=settings.daily_topup),
            wallet_dashboard_automation,
            wallet_day_activity_automation,
            build_freshness_sensor(freshness, settings.alert_interval_s, running=settings.freshness_sensor),
            build_alert_sensor(settings.alert_interval_s),
        ],
        resources={
            **resources_from_env(settings),
            "topup": topup_policy_from_env(settings),
            "alerts": alert_config_from_env(settings),
        },
        # One asset per run: the in-process executor saves the per-step process spawn (~3-5 s a run).
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
