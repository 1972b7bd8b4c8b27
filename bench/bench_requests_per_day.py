"""Requests per day of the v1 and v3 listings, for a day 1, 30, 300 and 1,000 days back (docs/API_STRATEGIES.md).

Against the simulator with the real API's semantics: `/extended/v2/burn-blocks` answers `total` = the Stacks tip
height (not a count), Bitcoin header times invert inside days and across midnights, and burn heights have gaps.
The server clock is now, so "N days back" is N days before today (UTC). Each v3 day uses a fresh lister, as the
first day of a run does (it pays for the burn tip); later days of a run cost one request less.

    .venv/bin/python bench/bench_requests_per_day.py
"""

from __future__ import annotations

import datetime as dt
import math

import common  # noqa: F401  (sys.path and a harmless STX_API_URL)

from stx_pipeline.hiro import HiroClient, fetch_day
from stx_pipeline.hiro.v3 import V3DayLister
from stx_pipeline.simulator import ChainConfig, FaultConfig, SimulatorServer, SyntheticChain

DAYS_BACK = (1, 30, 300, 1000)
CHAINS = {
    "mainnet-like: 5,000 tx/day, 7 burn gaps/day": ChainConfig(),
    "a third of burn heights without a tenure (48/day)": ChainConfig(burn_gaps_per_day=48),
}


def main() -> None:
    today = dt.datetime.now(dt.UTC).date()
    print("| Chain | Days back | Day | Transactions | v1 | v3 | of which boundary + count | v3, no by-block-time |")
    print("|---|---|---|---|---|---|---|---|")
    for name, config in CHAINS.items():
        chain = SyntheticChain(config)
        with SimulatorServer(chain) as sim, HiroClient(sim.url, requests_per_minute=0) as client:
            for back in DAYS_BACK:
                day = today - dt.timedelta(days=back)
                sim.faults = FaultConfig()
                v1 = fetch_day(client, day)
                v3 = V3DayLister(client).fetch_day(day)
                sim.faults = FaultConfig(no_by_block_time=True)
                v3_search = V3DayLister(client).fetch_day(day)
                assert v1.total == v3.total == v3_search.total == chain.day_total(day)
                assert v1.requests == math.ceil(v1.total / 50)
                print(
                    f"| {name} | {back} | {day} | {v1.total:,} | {v1.requests} | {v3.requests} | "
                    f"{v3.boundary_requests} | {v3_search.requests} ({v3_search.boundary_requests}) |"
                )


if __name__ == "__main__":
    main()
