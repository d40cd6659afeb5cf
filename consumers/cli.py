"""``bridge consume GROUP``: run one consumer-group application until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio

from bridge.config import load_config
from bridge.serve import run, stop_on_signals
from consumers import commands


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("consume", help="run a consumer group")
    groups = p.add_subparsers(dest="group", metavar="GROUP", required=True)
    c = groups.add_parser("commands", help="commerce.commands → outbox (group bridge-commands)")
    c.add_argument("--config", help="bridge.toml (default: $BRIDGE_CONFIG or ./bridge.toml)")
    c.set_defaults(func=_commands)


def _commands(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def main() -> None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await commands.run(config, stop)

    run(main())
    return 0
