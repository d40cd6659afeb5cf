"""``commerce-bridge``: one command line for every process and operator task (ARCHITECTURE §8)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bridge import __version__, log
from bridge.config import load_config
from bridge.errors import BridgeError, ConfigError

# Modules that add sub-commands through ``register(subparsers)``.
COMMAND_MODULES = (
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


def _config_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    sys.stdout.write(
        f"{config.source}: ok — {len(config.shops)} shop(s), {len(config.sync_groups)} sync "
        f"group(s), outbox {config.outbox.dsn.split('://', 1)[0]}, privacy {config.privacy.mode}\n"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commerce-bridge",
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
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate bridge.toml and name the bad key")
    check.add_argument("--config", help="bridge.toml (default: $BRIDGE_CONFIG or ./bridge.toml)")
    check.set_defaults(func=_config_check)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(args.log_level, args.log_format)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except ConfigError as exc:
        sys.stderr.write(f"bridge: configuration error: {exc}\n")
        return 2
    except BridgeError as exc:
        sys.stderr.write(f"bridge: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
