"""``commerce-bridge consume NAME``: run one registered consumer app until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from bridge.config import Config, load_config
from bridge.errors import ConfigError
from bridge.log import get_logger
from bridge.ops import ops_app
from bridge.serve import run, running_server, stop_on_signals
from consumers import registry
from consumers.app import AppSpec
from consumers.metrics import ConsumerMetrics
from consumers.runtime import Runtime, RuntimeOptions

log = get_logger(__name__)
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
        run(_main(spec, config, options, args.metrics_host, args.metrics_port))
        return 0

    return run_app


async def _main(
    spec: AppSpec, config: Config, options: RuntimeOptions, host: str, port: int
) -> None:
    stop = asyncio.Event()
    prometheus = CollectorRegistry()
    consumer_app = spec.create()
    own = getattr(
        consumer_app, "metrics_registry", None
    )  # an app's own metrics, served on /metrics too
    if isinstance(own, CollectorRegistry):
        prometheus.register(own)
    runtime = Runtime(
        consumer_app, config, options=options, metrics=ConsumerMetrics.create(prometheus)
    )
    with stop_on_signals(stop):
        async with contextlib.AsyncExitStack() as stack:
            if port:
                app = ops_app(prometheus, runtime.readiness)
                url = await stack.enter_async_context(running_server(app, host=host, port=port))
                log.info("consumer_metrics_listening", url=url, app=spec.name)
            await runtime.run(stop)
