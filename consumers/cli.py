"""``commerce-bridge consume GROUP``: run one consumer-group application until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from prometheus_client import CollectorRegistry

from bridge import clitools
from bridge.log import get_logger
from bridge.ops import ops_app
from bridge.serve import run, running_server, stop_on_signals
from consumers import commands
from consumers.runtime import ConsumerMetrics

log = get_logger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("consume", help="run a consumer group")
    groups = p.add_subparsers(dest="group", metavar="GROUP", required=True)
    c = groups.add_parser(
        "commands",
        parents=[clitools.CONFIG],
        help="commerce.commands → outbox (group bridge-commands)",
    )
    c.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve /healthz, /readyz, /metrics on this port (0: don't)",
    )
    c.add_argument("--metrics-host", default="0.0.0.0", help="bind address for --metrics-port")  # noqa: S104 - probes come from the kubelet
    c.set_defaults(func=_commands)


def _commands(args: argparse.Namespace) -> int:
    config = clitools.load(args)

    async def main() -> None:
        stop = asyncio.Event()
        registry = CollectorRegistry()
        metrics = ConsumerMetrics.create(registry)
        with stop_on_signals(stop):
            async with contextlib.AsyncExitStack() as stack:
                if args.metrics_port:
                    app = ops_app(registry, lambda: (metrics.joined, {"group": commands.GROUP}))
                    url = await stack.enter_async_context(
                        running_server(app, host=args.metrics_host, port=args.metrics_port)
                    )
                    log.info("consumer_metrics_listening", url=url)
                await commands.run(config, stop, metrics=metrics)

    run(main())
    return 0
