"""What every ``commerce-bridge`` command shares: the ``--config`` option and the exit codes.

A command module adds its parsers with ``parents=[CONFIG]`` when it reads the configuration, reads
the file with :func:`load`, and raises instead of printing errors: :func:`invoke` (used by
``commerce-bridge`` and by each module's stand-alone entry point) turns an exception into one
line on stderr and the exit code from :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bridge.config import Config, load_config
from bridge.errors import BridgeError, ConfigError, UsageError

PROG = "commerce-bridge"
CONFIG_HELP = "bridge.toml (default: $BRIDGE_CONFIG, then ./bridge.toml)"

# The one ``--config``. SUPPRESS: a sub-command's parser never overwrites a ``--config`` given
# before the sub-command (``commerce-bridge --config F outbox list``); absent means "not given".
CONFIG = argparse.ArgumentParser(add_help=False)
CONFIG.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)

OK = 0
FAILED = 1  # the operation was tried and did not succeed (broker down, row not retried, …)
USAGE = 2  # bad arguments or configuration: nothing was tried
INTERRUPTED = 130

# The first matching class decides; every error a command raises on purpose is a BridgeError.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, USAGE),
    (UsageError, USAGE),
    (BridgeError, FAILED),
)

Command = Callable[[argparse.Namespace], int]


def config_file(args: argparse.Namespace) -> str | None:
    """The ``--config`` given on the command line, if any (``load_config`` resolves the rest)."""
    value: str | None = getattr(args, "config", None)
    return value


def load(args: argparse.Namespace) -> Config:
    """The configuration named by ``--config``, else ``$BRIDGE_CONFIG``, else ``./bridge.toml``."""
    return load_config(config_file(args))


def exit_code(exc: BridgeError) -> int:
    """The exit code for an error a command raised on purpose."""
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), FAILED)


def error_line(exc: BaseException) -> str:
    """``commerce-bridge: <message>``; a configuration error names the key."""
    if isinstance(exc, ConfigError):
        return f"{PROG}: configuration error: {exc.key}: {exc.reason}"
    return f"{PROG}: {exc}"


def invoke(func: Command, args: argparse.Namespace) -> int:
    """Run one command and map what it raises to an exit code, with one line on stderr."""
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return INTERRUPTED
    except BridgeError as exc:
        sys.stderr.write(error_line(exc) + "\n")
        sys.stderr.flush()
        return exit_code(exc)
