"""A fresh simulator on a free loopback port per test, and an httpx client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.devtools.simulator import running_simulator
from tests.devtools.simulator.helpers import CONFIG


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    async with running_simulator(CONFIG, no_sync_groups=["cb-nogroups"]) as url:
        yield url


@pytest.fixture
async def client(sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim_url, timeout=10.0) as c:
        yield c
