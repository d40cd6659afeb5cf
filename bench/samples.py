"""Signed webhook samples for the benchmarks: a ~2 KB Cyberbiz order template and a ~5.7 KB
BentoWeb one, each request a distinct delivery (fresh id and modification time), signed like
``commerce-bridge sign``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bridge.config import ShopConfig
from bridge.devtools.sign import sign_request
from bridge.platforms._common import BANGKOK
from bridge.times import TAIPEI

REPO = Path(__file__).resolve().parents[1]


SAMPLES = REPO / "bridge" / "data" / "samples"


EVENT = "orders/create"


BENTO_EVENT = "order.new"


ID_BASE = 100_000_000_000  # order ids have 12 digits: every body has the same length


STAMP_SENTINEL = "2099-12-31 23:59:59"


TAIPEI_OFFSET = int(TAIPEI.utcoffset(None).total_seconds())


BANGKOK_OFFSET = int(BANGKOK.utcoffset(None).total_seconds())


BENTO_BODY_BYTES = 5700  # issue 10's set-up: "the same 5.7 KB BentoWeb order body"


# (sku, title, variant title, price, quantity, product id, variant id)
_EXTRA_ITEMS = [
    ("TEE-WHT-L", "Logo tee", "White / L", 590.0, 1, 1001, 5003),
    ("HOOD-GRY-M", "Zip hoodie", "Heather grey / M", 1480.0, 1, 1004, 5020),
    ("SOCK-3P", "Crew socks (3 pairs)", "Mixed", 320.0, 2, 1009, 5061),
    ("TOTE-NAT", "Canvas tote", "Natural", 450.0, 1, 1012, 5080),
    ("MUG-350", "Enamel mug 350 ml", "Black", 380.0, 1, 1015, 5102),
    ("CAP-KHK", "Cap", "Khaki", 600.0, 1, 1002, 5008),
    ("STK-PACK", "Sticker pack", "Assorted", 120.0, 3, 1020, 5140),
]


@dataclass(frozen=True, slots=True)
class OrderTemplate:
    """A compact order body split around its order id and modification time (local time of
    ``utc_offset``, ``YYYY-MM-DD HH:MM:SS``), sent as ``event``."""

    head: bytes
    middle: bytes
    tail: bytes
    event: str = EVENT
    utc_offset: int = TAIPEI_OFFSET

    def body(self, order_id: int, updated_at: str) -> bytes:
        parts = (self.head, str(order_id).encode(), self.middle, updated_at.encode(), self.tail)
        return b"".join(parts)

    def stamp(self, now: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + self.utc_offset))


def order_template(target_bytes: int = 2048) -> OrderTemplate:
    """The sample order plus realistic line items, until the body is about ``target_bytes``."""
    order = orjson.loads((SAMPLES / "cyberbiz" / "order.json").read_bytes())
    items: list[dict[str, Any]] = order["line_items"]
    for n, (sku, title, variant, price, qty, product, variant_id) in enumerate(_EXTRA_ITEMS):
        if len(orjson.dumps(order)) >= target_bytes - 150:
            break
        items.append(
            {
                "id": 303 + n,
                "product_id": product,
                "product_variant_id": variant_id,
                "sku": sku,
                "title": title,
                "variant_title": variant,
                "price": price,
                "quantity": qty,
            }
        )
    subtotal = round(sum(i["price"] * i["quantity"] for i in items), 2)
    order["prices"]["total_line_items_price"] = subtotal
    order["prices"]["total_price"] = round(subtotal + order["prices"]["shipping_rate_price"], 2)
    sentinel = ID_BASE * 10 - 1
    order["id"] = sentinel
    order["updated_at"] = STAMP_SENTINEL
    head, rest = orjson.dumps(order).split(str(sentinel).encode(), 1)
    middle, tail = rest.split(STAMP_SENTINEL.encode(), 1)
    return OrderTemplate(head, middle, tail)


def bento_order_template(target_bytes: int = BENTO_BODY_BYTES) -> OrderTemplate:
    """BentoWeb's sample order (PII fields and all) plus line items, until ``target_bytes``."""
    doc = orjson.loads((SAMPLES / "bentoweb" / "order.json").read_bytes())
    order = doc["data"]["order"]
    items: list[dict[str, Any]] = order["order_item"]
    first = {k: v for k, v in items[0].items() if k != "product"}  # the lines of a real order
    for n, (sku, title, _variant, price, qty, product, variant_id) in enumerate(_EXTRA_ITEMS * 9):
        if len(orjson.dumps(doc)) >= target_bytes - 200:
            break
        item = {**first, "order_item_id": 9000 + n, "product_id": product, "sku": sku}
        item.update(product_variant_id=variant_id, name=title, qty=qty, price=f"{price:.2f}")
        items.append(item)
    sentinel = ID_BASE * 10 - 1
    order["order_id"] = sentinel
    order["date_modified"] = STAMP_SENTINEL
    head, rest = orjson.dumps(doc).split(str(sentinel).encode(), 1)
    middle, tail = rest.split(STAMP_SENTINEL.encode(), 1)
    return OrderTemplate(head, middle, tail, BENTO_EVENT, BANGKOK_OFFSET)


def taipei_stamp(now: float) -> str:
    """Cyberbiz's ``YYYY-MM-DD HH:MM:SS``, Taipei time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + TAIPEI_OFFSET))


class SignedRequests:
    """Distinct order deliveries as raw HTTP requests, signed like ``commerce-bridge sign``."""

    def __init__(self, shop: ShopConfig, host: str, template: OrderTemplate) -> None:
        self.shop = shop
        self.host = host
        self.template = template

    def build(self, order_id: int, now: float) -> bytes:
        body = self.template.body(order_id, self.template.stamp(now))
        suffix, headers = sign_request(self.shop, body, self.template.event, now)
        lines = [f"POST /webhooks/{self.shop.id}{suffix} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
