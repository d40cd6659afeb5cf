"""``commerce-bridge config check``: validate a configuration file and name the bad key."""

from __future__ import annotations

import argparse
import sys

from bridge import clitools


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``config check``."""
    config = sub.add_parser("config", help="check a configuration file")
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", parents=[clitools.CONFIG], help="validate bridge.toml and name the bad key"
    )
    check.set_defaults(func=config_check)


def config_check(args: argparse.Namespace) -> int:
    config = clitools.load(args)
    sys.stdout.write(
        f"{config.source}: ok — {len(config.shops)} shop(s), {len(config.sync_groups)} sync "
        f"group(s), outbox {config.outbox.dsn.split('://', 1)[0]}, privacy {config.privacy.mode}\n"
    )
    return clitools.OK
