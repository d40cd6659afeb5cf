"""The consumer apps ``commerce-bridge consume NAME`` can run, one module each.

Each module listed in :data:`APP_MODULES` defines ``SPEC``, a :class:`~consumers.app.AppSpec`
(name, a one-line summary for ``consume --help``, and a factory of the app). To add an app: write
its module, give it ``SPEC = AppSpec("inventory-sync", "…", InventorySyncApp)``, and add its module
path here (e.g. ``"consumers.inventory_sync.app"``). Every module listed must import.
"""

from __future__ import annotations

import importlib

from bridge.errors import BridgeError
from consumers.app import AppSpec

APP_MODULES = ("consumers.commands", "consumers.inventory_sync.app")


def specs() -> list[AppSpec]:
    """The registered apps, in :data:`APP_MODULES` order."""
    found: list[AppSpec] = []
    for module in APP_MODULES:
        spec = importlib.import_module(module).SPEC
        if not isinstance(spec, AppSpec):
            raise TypeError(f"{module}.SPEC must be an AppSpec")
        found.append(spec)
    return found


def get(name: str) -> AppSpec:
    """The app registered as ``name``."""
    for spec in specs():
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in specs())
    raise BridgeError(f"unknown consumer app {name!r} (known: {known})")
