"""A real HTTP server standing in for the Cyberbiz and BentoWeb write APIs.

Used by tests, benchmarks and ``bridge dev``: ``async with running_simulator(config) as url`` in
tests, ``bridge simulate`` as a process. The HTTP contract is in :mod:`bridge.simulator.app`.
"""

from bridge.simulator.app import (
    Simulator,
    SimulatorOptions,
    api_base,
    create_app,
    demo_config,
    point_config_at,
)
from bridge.simulator.faults import Decision, Faults, FaultSettings
from bridge.simulator.server import running_simulator
from bridge.simulator.state import SimState, StockSeed

__all__ = [
    "Decision",
    "FaultSettings",
    "Faults",
    "SimState",
    "Simulator",
    "SimulatorOptions",
    "StockSeed",
    "api_base",
    "create_app",
    "demo_config",
    "point_config_at",
    "running_simulator",
]
