"""Shared test helpers for platform, privacy, schema and signing tests (no fixtures magic)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from bridge.config import PrivacyConfig, ShopConfig
from bridge.events import CanonicalEvent
from bridge.platforms import get_platform
from bridge.platforms.base import Delivery
from bridge.privacy import Privacy

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "bridge" / "data" / "samples"
SCHEMAS = ROOT / "schemas"
# The platform documents the product was specified from (a verbatim copy of shared/seeds)
SEEDS = ROOT / "tests" / "platforms" / "seeds"

RECEIVED_AT = datetime(2024, 7, 11, 8, 0, 0, tzinfo=UTC)
NOW = RECEIVED_AT.timestamp()
KEY = bytes(range(32))
KID = "k1"
SECRET = "app-secret-1"

# Every event each platform knows, for table-driven and property tests.
EVENTS: Mapping[str, tuple[str, ...]] = {
    "cyberbiz": (
        "orders/create", "orders/paid", "orders/cancelled", "orders/returned",
        "orders/partial_return", "orders/refunded", "orders/closed", "products/create",
        "products/update", "products/delete", "variants/create", "variants/update",
        "variants/delete", "customers/create", "customers/update", "apps/uninstall",
    ),
    "bentoweb": (
        "order.new", "order.paid", "order.cancel", "variant.add", "variant.update",
        "variant.delete", "product.add", "product.update", "product.delete",
    ),
    "standard": (
        "order.created", "order.paid", "order.cancelled", "variant.updated", "product.updated",
        "product.deleted", "customer.created", "refund.created",
    ),
}  # fmt: skip

# (platform, fixture file, an event it is sent for)
SAMPLES = (
    ("cyberbiz", "cyberbiz/order.json", "orders/paid"),
    ("cyberbiz", "cyberbiz/variant.json", "variants/update"),
    ("cyberbiz", "cyberbiz/product.json", "products/update"),
    ("cyberbiz", "cyberbiz/customer.json", "customers/update"),
    ("cyberbiz", "cyberbiz/app_uninstall.json", "apps/uninstall"),
    ("bentoweb", "bentoweb/order.json", "order.new"),
    ("bentoweb", "bentoweb/order.json", "order.paid"),
    ("bentoweb", "bentoweb/order.json", "order.cancel"),
    ("bentoweb", "bentoweb/variant.json", "variant.update"),
    ("bentoweb", "bentoweb/product.json", "product.add"),
    ("standard", "standard/order_paid.json", "order.paid"),
    ("standard", "standard/variant_updated.json", "variant.updated"),
    ("standard", "standard/product_updated.json", "product.updated"),
    ("standard", "standard/customer_created.json", "customer.created"),
)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> Any:
    return orjson.loads(fixture_bytes(name))


def shop(platform: str, **overrides: Any) -> ShopConfig:
    settings: dict[str, Any] = {
        "id": f"{platform}-shop",
        "platform": platform,
        "api_base": "https://api.example.test",
        "webhook_secrets": (SECRET,),
    }
    settings.update(overrides)
    return ShopConfig(**settings)


def delivery(
    shop_config: ShopConfig,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    path_event: str | None = None,
    client_ip: str | None = "203.0.113.7",
) -> Delivery:
    return Delivery(
        shop=shop_config,
        body=body,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        query=dict(query or {}),
        path_event=path_event,
        client_ip=client_ip,
        received_at=RECEIVED_AT,
    )


def privacy(mode: str = "encrypt") -> Privacy:
    if mode == "encrypt":
        return Privacy(PrivacyConfig(mode="encrypt", keys={KID: KEY}, active_key_id=KID))
    if mode == "redact":
        return Privacy(PrivacyConfig(mode="redact"))
    return Privacy(PrivacyConfig(mode="passthrough"))


def normalise(
    platform: str,
    event: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    privacy_mode: str = "encrypt",
) -> CanonicalEvent:
    """Normalise a body as the ingress would after verification (payload parsed with orjson)."""
    return get_platform(platform).normalise(
        delivery(shop(platform), body, headers=headers),
        event,
        orjson.loads(body),
        privacy(privacy_mode),
    )


def fields(event: CanonicalEvent) -> dict[str, Any]:
    """The normalised part of the value: everything except ``raw`` and the event id."""
    return {k: v for k, v in event.value.items() if k not in ("raw", "id")}


@functools.cache
def validator(entity: str) -> Draft202012Validator:
    schema = orjson.loads((SCHEMAS / f"{entity}.v1.json").read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(event: CanonicalEvent) -> list[str]:
    """Schema violations of the event's value, as readable strings (empty when valid)."""
    value = orjson.loads(orjson.dumps(event.value))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(event.entity).iter_errors(value)
    ]


# JSON values as orjson.loads can produce them (integers within 64 bits, finite floats).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
