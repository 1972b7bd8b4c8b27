"""Choosing the listing endpoint for a run: v1 offset paging, v3 cursor paging, or v1 until its sunset (auto).

Both strategies return the same `DayFetch` (v1-shaped records, the API's own count for the day), so the
asset stores identical rows whichever listed the day.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

from stx_pipeline.hiro.client import HiroClient, Logger
from stx_pipeline.hiro.errors import EndpointGoneError
from stx_pipeline.hiro.transactions import DayFetch, fetch_day
from stx_pipeline.hiro.v3 import V3DayLister

Strategy = Literal["v1", "v3", "auto"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


def check_strategy(value: str) -> Strategy:
    if value not in STRATEGIES:
        raise ValueError(f"unknown API strategy {value!r}: use one of {', '.join(STRATEGIES)}")
    return value  # type: ignore[return-value]


class DayFetcher:
    """Fetches days for one run. Under `auto` the first 410 from v1 switches the rest of the run to v3."""

    def __init__(
        self,
        client: HiroClient,
        strategy: str = "auto",
        *,
        page_workers: int = 4,
        logger: Logger | None = None,
    ) -> None:
        self.client = client
        self.strategy = check_strategy(strategy)
        self.page_workers = page_workers
        self.log: Logger = logger or client.log
        self.active: Literal["v1", "v3"] = "v3" if self.strategy == "v3" else "v1"
        self.switched_to_v3 = False
        self._v3 = V3DayLister(client, page_workers=page_workers, logger=self.log)

    @property
    def by_block_time_available(self) -> bool:
        return self._v3.by_block_time_available

    def fetch(self, day: dt.date) -> DayFetch:
        if self.active == "v1":
            try:
                return fetch_day(self.client, day, page_workers=self.page_workers)
            except EndpointGoneError as exc:
                if self.strategy != "auto":
                    raise
                # Remember the switch: a retired endpoint does not come back, and asking again costs a call a day.
                self.active = "v3"
                self.switched_to_v3 = True
                self.log.warning(
                    f"partition {day}: the v1 listing is gone ({exc.endpoint} answered 410); switching this run "
                    "to the v3 cursor listing (/extended/v3/transactions). Set STX_API_STRATEGY=v3 to skip v1."
                )
        return self._v3.fetch_day(day)
