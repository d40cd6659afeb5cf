"""``commerce-bridge``: one command line for every process and operator task.

The parser is built from :data:`COMMAND_MODULES`, each adding its sub-commands through
``register(subparsers)``; exit codes and error lines come from :mod:`bridge.clitools`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bridge import __version__, clitools, log, memory

# The one list of command modules: each adds its sub-commands through ``register(subparsers)``.
COMMAND_MODULES = (
    "bridge.config_cli",
    "bridge.devtools.dev",
    "bridge.ingress.cli",
    "bridge.kafka.cli",
    "bridge.devtools.kafka.cli",
    "bridge.devtools.sign",
    "bridge.devtools.simulator.cli",
    "bridge.outbox.cli",
    "bridge.relay.cli",
    "consumers.cli",
    "consumers.inventory_sync.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=clitools.PROG,
        parents=[clitools.CONFIG],
        description="commerce-bridge: platform webhooks into Kafka events, and decisions made by "
        "Kafka consumers back into rate-limited, idempotent platform API writes.",
    )
    parser.add_argument("--version", action="version", version=f"commerce-bridge {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format", default="auto", choices=["auto", "json", "console"],
        help="json in production; auto picks console on a terminal",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(args.log_level, args.log_format)
    memory.fix_mmap_threshold()  # long-running commands: no RSS steps (bridge.memory)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return clitools.USAGE
    return clitools.invoke(func, args)


if __name__ == "__main__":
    sys.exit(main())
