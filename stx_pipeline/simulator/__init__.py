"""Hiro Stacks API simulator: a deterministic synthetic chain served over real HTTP with faults.

Standalone on purpose (no dagster, no other stx_pipeline modules) so it can run as its own process.

    chain = SyntheticChain(ChainConfig(seed=7, txs_per_day=5000))
    with SimulatorServer(chain, FaultConfig(error_rate=0.1), rpm_limit=500) as sim:
        requests.get(f"{sim.url}/extended/v1/tx", params={"start_time": s, "end_time": e, "limit": 50})
        sim.faults = FaultConfig(gone=True)          # or POST {sim.url}/_sim/faults
        sim.stats()                                  # or GET {sim.url}/_sim/stats

Notes: windows are capped at 31 days (HTTP 400 beyond), and rows with burn_block_time after the
server clock are hidden (the chain has not produced them yet; `hide_future=False` lifts that).
"""

from stx_pipeline.simulator.chain import ChainConfig, SyntheticChain, day_bounds
from stx_pipeline.simulator.faults import FaultConfig
from stx_pipeline.simulator.server import SimulatorServer, serve

__all__ = ["ChainConfig", "FaultConfig", "SimulatorServer", "SyntheticChain", "day_bounds", "serve"]
