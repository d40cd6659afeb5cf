"""``commerce-bridge consume NAME``: run one registered consumer app until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from bridge import serve
from bridge.config import Config, load_config
from bridge.errors import ConfigError
from consumers import registry, runtime
from consumers.app import AppSpec
from consumers.runtime import RuntimeOptions

DEFAULTS = RuntimeOptions()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "consume",
        help="run a consumer-group app",
        description="Run one consumer-group app: it reads its topics and commits its decisions "
        "to the outbox, then the Kafka offset. SIGTERM finishes the batch in hand, commits it, "
        "leaves the group and exits 0.",
    )
    apps = p.add_subparsers(dest="app", metavar="NAME", required=True, title="apps")
    for spec in registry.specs():
        c = apps.add_parser(spec.name, help=spec.summary, description=spec.summary)
        c.add_argument("--config", help="bridge.toml (default: $BRIDGE_CONFIG or ./bridge.toml)")
        c.add_argument(
            "--metrics-port",
            type=int,
            default=0,
            help="serve /healthz, /readyz, /metrics on this port (0: don't)",
        )
        c.add_argument("--metrics-host", default="0.0.0.0", help="bind address for --metrics-port")  # noqa: S104 - probes come from the kubelet
        c.add_argument(
            "--poison-after",
            type=int,
            default=DEFAULTS.poison_after,
            metavar="N",
            help="after N failures in a row of one batch, handle it record by record and "
            f"dead-letter the records that fail alone (default {DEFAULTS.poison_after})",
        )
        c.set_defaults(func=_runner(spec))


def _runner(spec: AppSpec) -> Callable[[argparse.Namespace], int]:
    def run_app(args: argparse.Namespace) -> int:
        if args.poison_after < 1:
            raise ConfigError("--poison-after", "must be at least 1")
        config = load_config(args.config)
        options = RuntimeOptions(poison_after=args.poison_after)
        serve.run(_main(spec, config, options, args.metrics_host, args.metrics_port))
        return 0

    return run_app


async def _main(
    spec: AppSpec, config: Config, options: RuntimeOptions, host: str, port: int
) -> None:
    stop = asyncio.Event()
    with serve.stop_on_signals(stop):
        await runtime.run(
            spec.create(), config, stop, options=options, metrics_host=host, metrics_port=port
        )
