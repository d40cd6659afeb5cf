"""The platforms the bridge speaks: one package each, registered here by name.

A platform is a package under ``bridge/platforms/`` exposing one :class:`Platform` (``PLUGIN``);
adding one is adding its package and registering it below (or calling :func:`register`).
"""

from __future__ import annotations

from bridge.platforms import bentoweb, cyberbiz, standard
from bridge.platforms.base import Platform
from bridge.platforms.registry import (
    client_for,
    get,
    get_platform,
    names,
    owners_of,
    register,
    target_codec,
    unregister,
)

for _builtin in (cyberbiz.PLUGIN, bentoweb.PLUGIN, standard.PLUGIN):
    register(_builtin)

__all__ = [
    "Platform",
    "client_for",
    "get",
    "get_platform",
    "names",
    "owners_of",
    "register",
    "target_codec",
    "unregister",
]
