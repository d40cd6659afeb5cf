"""BentoWeb webhooks: the per-shop token, the optional source-IP allow-list, per-URL event names.

Source: ../shared/seeds/bentoweb-callback-webhook-examples.txt. BentoWeb signs nothing and puts no
event name in the body: each event is subscribed to its own URL (``/webhooks/{shop}/{event}``) and
authenticated by a per-shop secret token (``X-Webhook-Token`` or ``?token=``).
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from bridge.errors import UnknownEvent, VerificationFailed
from bridge.platforms.base import Delivery

NAME = "bentoweb"

TOKEN_HEADER = "x-webhook-token"  # noqa: S105 - a header name, not a secret
TOKEN_QUERY = "token"  # noqa: S105 - a query parameter name, not a secret
SECRET_HEADERS = frozenset({TOKEN_HEADER})
STOCK_EVENT = "variant.update"

# Event (the URL's last segment) → (entity, canonical action).
EVENTS = {
    "order.new": ("order", "created"),
    "order.paid": ("order", "paid"),
    "order.cancel": ("order", "cancelled"),
    "variant.add": ("variant", "created"),
    "variant.update": ("variant", "updated"),
    "variant.delete": ("variant", "deleted"),
    "product.add": ("product", "created"),
    "product.update": ("product", "updated"),
    "product.delete": ("product", "deleted"),
}
# Spellings an operator may well use when subscribing the URLs; mapped to BentoWeb's own names so
# that event ids (and thus deduplication) do not depend on the spelling.
_NOUNS = {
    "order": "order", "product": "product", "variant": "variant",
    "product_variant": "variant", "product-variant": "variant", "productvariant": "variant",
}  # fmt: skip
_VERBS = {
    "order": {"new": "new", "create": "new", "created": "new", "paid": "paid", "pay": "paid",
              "cancel": "cancel", "cancelled": "cancel", "canceled": "cancel"},
    "variant": {"add": "add", "create": "add", "created": "add", "update": "update",
                "updated": "update", "edit": "update", "delete": "delete", "deleted": "delete",
                "remove": "delete"},
}  # fmt: skip
_VERBS["product"] = _VERBS["variant"]


@lru_cache(maxsize=256)
def _networks(
    allowed: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parsed allow-list; an entry that does not parse allows nothing (fail closed)."""
    networks = []
    for entry in allowed:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def ip_allowed(client_ip: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether ``client_ip`` is in one of the ``allowed`` addresses/CIDR blocks."""
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(allowed))


def verify(delivery: Delivery, now: float) -> None:
    """The shop's token (constant time, every secret of a rotation) and allow-list."""
    shop = delivery.shop
    if shop.allowed_ips and not ip_allowed(delivery.client_ip, shop.allowed_ips):
        raise VerificationFailed("source address not in the shop's allowed_ips")
    token = delivery.headers.get(TOKEN_HEADER) or delivery.query.get(TOKEN_QUERY)
    if not token:
        raise VerificationFailed("missing webhook token (X-Webhook-Token or ?token=)")
    given = token.encode()
    matched = False
    for secret in shop.webhook_secrets:  # several during a rotation; compare them all
        matched |= hmac.compare_digest(given, secret.encode())
    if not matched:
        raise VerificationFailed("webhook token does not match")


def event_name(delivery: Delivery) -> str:
    """BentoWeb's own spelling of the URL's event (``order.create`` → ``order.new``)."""
    given = delivery.path_event
    if not given:
        raise UnknownEvent("BentoWeb needs the event in the URL: /webhooks/{shop}/{event}")
    noun, _, verb = given.strip().lower().rpartition(".")
    canonical = _NOUNS.get(noun)
    mapped = _VERBS[canonical].get(verb) if canonical else None
    if canonical is None or mapped is None:
        raise UnknownEvent(f"not a BentoWeb event: {given[:60]!r}")
    return f"{canonical}.{mapped}"
