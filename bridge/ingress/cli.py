"""``commerce-bridge ingress``: serve the webhook endpoint."""

from __future__ import annotations

import argparse

from bridge import clitools
from bridge.ingress.app import create_app
from bridge.log import get_logger
from bridge.serve import run, serve_until_stopped

log = get_logger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ingress",
        parents=[clitools.CONFIG],
        help="serve the webhook endpoint POST /webhooks/{shop}[/{event}]",
    )
    p.add_argument("--host", default="0.0.0.0", help="bind address (default 0.0.0.0)")  # noqa: S104 - a server in a container listens on all interfaces
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies trusted for X-Forwarded-For (client IP for allow-lists)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    config = clitools.load(args)
    app = create_app(config)
    # SIGTERM: stop accepting, finish in-flight requests, then the lifespan flushes the producer.
    run(
        serve_until_stopped(
            app,
            args.host,
            args.port,
            proxy_headers=True,
            forwarded_allow_ips=args.forwarded_allow_ips,
            timeout_graceful_shutdown=20,
            on_ready=lambda url: log.info("ingress_listening", url=url),
        )
    )
    return 0
