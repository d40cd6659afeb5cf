"""``commerce-bridge ingress``: serve the webhook endpoint."""

from __future__ import annotations

import argparse

from bridge import clitools
from bridge.ingress.app import create_app
from bridge.log import get_logger
from bridge.serve import Sidecar, run, serve_until_stopped

log = get_logger(__name__)

# Requests beyond the bodies being read (rejections, twins waiting for the broker's ack).
CONCURRENCY_HEADROOM = 64


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ingress",
        parents=[clitools.CONFIG],
        help="serve the webhook endpoint POST /webhooks/{shop}[/{event}]",
    )
    p.add_argument("--host", default="0.0.0.0", help="bind address (default 0.0.0.0)")  # noqa: S104 - a server in a container listens on all interfaces
    p.add_argument("--port", type=int, default=8080, help="webhook port (default 8080)")
    p.add_argument(
        "--ops-port",
        type=int,
        default=None,
        help="port of /healthz, /readyz, /metrics (default: ingress.ops_port, 9090)",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies trusted for X-Forwarded-For (client IP for allow-lists)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    config = clitools.load(args)
    app = create_app(config)
    ops_port = config.ingress.ops_port if args.ops_port is None else args.ops_port
    ops = Sidecar(app.state.ops, ops_port, lambda url: log.info("ingress_ops_listening", url=url))
    # SIGTERM: stop accepting, finish in-flight requests, then the lifespan flushes the producer.
    # Connections beyond limit_concurrency get 503 from uvicorn before any body is read; the
    # app's own budget (ingress.max_concurrent_bodies / max_buffered_bytes) bounds the rest.
    run(
        serve_until_stopped(
            app,
            args.host,
            args.port,
            proxy_headers=True,
            forwarded_allow_ips=args.forwarded_allow_ips,
            timeout_graceful_shutdown=20,
            limit_concurrency=config.ingress.max_concurrent_bodies + CONCURRENCY_HEADROOM,
            h11_max_incomplete_event_size=64 * 1024,
            on_ready=lambda url: log.info("ingress_listening", url=url),
            sidecars=[ops],
        )
    )
    return 0
