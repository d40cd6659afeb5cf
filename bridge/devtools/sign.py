"""``commerce-bridge sign``: a webhook request the ingress accepts, signed the way each platform
signs it.

For trying the ingress by hand (``commerce-bridge sign --shop cb-taipei order.json | sh``) and for
tests:
:func:`sign_request` is the inverse of each platform's ``verify``. Standard Webhooks signatures
carry a timestamp and expire after five minutes; a BentoWeb command contains the shop's token.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from urllib.parse import quote

from bridge import platforms
from bridge.config import ShopConfig, load_config
from bridge.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8080"
JSON_HEADERS = {"Content-Type": "application/json"}


def sign_request(
    shop: ShopConfig, body: bytes, event: str, now: float
) -> tuple[str, dict[str, str]]:
    """(URL suffix after ``/webhooks/{shop}``, headers) for ``body`` as ``event``, at ``now``.

    Signs with the shop's first (current) webhook secret, the way the shop's platform plugin
    says; a platform that reads the event from the body (``needs_event`` off) takes ``""``.
    """
    if not shop.webhook_secrets:
        raise ConfigError(f"shops.{shop.id}.webhook_secrets", "needs a secret to sign with")
    plugin = platforms.get(shop.platform)
    if plugin.needs_event and not event:
        raise ConfigError(
            "--event", f"{shop.platform} webhooks need an event name (none guessed from the body)"
        )
    signed = plugin.sign(shop.webhook_secrets[0], shop.id, body, event, now)
    return signed.suffix, {**JSON_HEADERS, **signed.headers}


def guess_event(platform: str, body: bytes) -> str | None:
    """A plausible event for a sample body (``--event`` omitted), or ``None``."""
    if platform not in platforms.names():
        return None
    return platforms.get(platform).guess_event(body)


def curl_command(
    url_base: str, shop: ShopConfig, body_file: Path, event: str | None, now: float | None = None
) -> str:
    """A ready-to-run ``curl`` that POSTs ``body_file`` to the ingress, signed for ``shop``."""
    body = Path(body_file).read_bytes()
    name = event or guess_event(shop.platform, body) or ""
    suffix, headers = sign_request(shop, body, name, time.time() if now is None else now)
    url = f"{url_base.rstrip('/')}/webhooks/{quote(shop.id, safe='')}{suffix}"
    parts = [["curl", "-sS", "-X", "POST", url]]
    parts += [["-H", f"{key}: {value}"] for key, value in headers.items()]
    parts.append(["--data-binary", f"@{body_file}"])
    return " \\\n  ".join(" ".join(shlex.quote(p) for p in part) for part in parts)


def _run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    shop = config.shop(args.shop)
    if shop is None:
        known = ", ".join(sorted(config.shops)) or "none"
        raise ConfigError("--shop", f"unknown shop {args.shop!r} (configured: {known})")
    path = Path(args.file)
    try:
        command = curl_command(args.url, shop, path, args.event)
    except OSError as exc:
        sys.stderr.write(f"commerce-bridge sign: cannot read {str(path)!r}: {exc.strerror}\n")
        return 2
    sys.stdout.write(command + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``commerce-bridge sign --shop S [--event E] [--url URL] [--config F] FILE``."""
    parser = subparsers.add_parser(
        "sign",
        help="print a signed curl command that posts FILE to the ingress",
        description="Print a curl command that POSTs FILE to the ingress, signed the way the "
        "shop's platform signs webhooks.",
        epilog="Timestamped signatures (Standard Webhooks) expire after five minutes; a "
        "token-authenticated platform's command contains the shop's webhook token.",
    )
    parser.add_argument("--shop", required=True, help="configured shop id")
    parser.add_argument(
        "--event",
        help="platform event (orders/paid, variant.update, …); guessed from the body if omitted",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"ingress base URL ({DEFAULT_URL})")
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,  # keep a top-level --config, if the main parser has one
        help="bridge.toml (default: $BRIDGE_CONFIG or ./bridge.toml)",
    )
    parser.add_argument("file", metavar="FILE", help="JSON body to send")
    parser.set_defaults(func=_run)
