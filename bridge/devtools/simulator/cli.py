"""``commerce-bridge simulate``: the platform simulator as a process."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bridge.config import load_config
from bridge.devtools.simulator.app import create_app
from bridge.devtools.simulator.faults import FaultSettings
from bridge.devtools.simulator.options import SimulatorOptions, demo_config, demo_options
from bridge.devtools.simulator.server import SIMULATOR_SERVER_OPTIONS
from bridge.errors import ConfigError
from bridge.serve import run as run_loop
from bridge.serve import serve_until_stopped

DEFAULT_PORT = 8900


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``simulate`` to the ``commerce-bridge`` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run the Cyberbiz/BentoWeb API simulator",
        description="A local stand-in for the Cyberbiz and BentoWeb write APIs, with rate "
        "limits, idempotency, fault injection and webhook echo. Inspect it under /_sim/.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--config", help="bridge.toml with the [[shops]] to simulate")
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction answered 500/502/503 before the write is applied",
    )
    parser.add_argument(
        "--fail-after-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of writes applied and then answered 500",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, metavar="N")
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0, metavar="N")
    parser.add_argument(
        "--429-rate",
        dest="rate_429",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction answered with a spurious 429",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="RNG seed of fault injection and --drop-webhooks"
    )
    parser.add_argument(
        "--drop-webhooks",
        type=float,
        default=0.0,
        metavar="RATE",
        help="fraction (0..1) of the webhooks sent back after writes and sales that are dropped "
        "(counted as webhooks_dropped in /_sim/stats)",
    )
    parser.add_argument(
        "--webhooks-to", metavar="URL", help="ingress base URL to post the platform webhooks to"
    )
    parser.add_argument(
        "--no-sync-groups",
        action="append",
        default=[],
        metavar="SHOP",
        help="a Cyberbiz shop without the inventory sync group add-on",
    )
    parser.add_argument("--token-ttl", type=float, default=3600.0, metavar="S",
                        help="BentoWeb access token expires_in")  # fmt: skip


def _fail(message: str) -> int:
    sys.stderr.write(f"commerce-bridge simulate: error: {message}\n")
    return 2


def _announce(url: str) -> None:
    sys.stdout.write(f"simulator listening on {url}\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config) if args.config else demo_config()
        base = SimulatorOptions() if args.config else demo_options()
        options = SimulatorOptions(
            no_sync_groups=frozenset(args.no_sync_groups),
            webhooks_to=args.webhooks_to,
            drop_webhooks=args.drop_webhooks,
            token_ttl=args.token_ttl,
            initial_stock=base.initial_stock,
        )
        faults = FaultSettings(
            fail_rate=args.fail_rate,
            fail_after_rate=args.fail_after_rate,
            latency_ms=args.latency_ms,
            latency_jitter_ms=args.latency_jitter_ms,
            rate_429=args.rate_429,
        )
        app = create_app(config, options=options, faults=faults, seed=args.seed)
    except (ConfigError, ValueError) as exc:
        return _fail(str(exc))
    try:
        run_loop(
            serve_until_stopped(
                app, args.host, args.port, on_ready=_announce, **SIMULATOR_SERVER_OPTIONS
            )
        )
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.devtools.simulator.cli``: the same command without the
    ``commerce-bridge`` wrapper."""
    parser = argparse.ArgumentParser(prog="commerce-bridge simulate")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
