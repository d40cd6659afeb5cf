"""A real HTTP server standing in for the Cyberbiz and BentoWeb write APIs.

Used by tests, benchmarks and ``commerce-bridge dev``: ``async with running_simulator(config) as
url`` in
tests, ``commerce-bridge simulate`` as a process. The HTTP contract is in
:mod:`bridge.devtools.simulator.app`.
"""

from bridge.devtools.simulator.app import Simulator, create_app
from bridge.devtools.simulator.faults import Decision, Faults, FaultSettings
from bridge.devtools.simulator.options import (
    SimulatorOptions,
    api_base,
    demo_config,
    point_config_at,
)
from bridge.devtools.simulator.server import running_simulator
from bridge.devtools.simulator.state import SimState, StockSeed

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
