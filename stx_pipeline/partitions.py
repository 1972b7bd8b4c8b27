"""The daily partitions: the one definition every asset, sensor and command shares."""

from __future__ import annotations

import dagster as dg

from stx_pipeline.settings import Settings

# UTC days; end_offset=0 means the last partition is yesterday: only complete days exist.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=Settings.from_env().start_date.isoformat(), end_offset=0, timezone="UTC"
)
