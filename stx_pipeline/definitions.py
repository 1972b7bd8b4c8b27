"""The one entry point of the code location: `defs`."""

from __future__ import annotations

import dagster as dg

from stx_pipeline.assets.transactions import stx_transactions
from stx_pipeline.resources import resources_from_env
from stx_pipeline.settings import Settings

settings = Settings.from_env()

defs = dg.Definitions(
    assets=[stx_transactions],
    resources=resources_from_env(settings),
    # One asset per run: the in-process executor saves the per-step process spawn (~3-5 s a run).
    executor=dg.in_process_executor,
)
