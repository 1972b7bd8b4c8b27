"""Hiro Stacks API simulator: a deterministic synthetic chain served over real HTTP with faults.

Standalone on purpose (no dagster, no other stx_pipeline modules) so it can run as its own process.
"""

from stx_pipeline.simulator.chain import ChainConfig, SyntheticChain, day_bounds
from stx_pipeline.simulator.faults import FaultConfig
from stx_pipeline.simulator.server import SimulatorServer, serve

__all__ = ["ChainConfig", "FaultConfig", "SimulatorServer", "SyntheticChain", "day_bounds", "serve"]
