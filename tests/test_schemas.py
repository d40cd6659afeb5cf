"""JSON Schemas: every canonical event validates; malformed input is InvalidPayload, nothing else."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import InvalidPayload
from bridge.events import ENTITIES, CanonicalEvent
from bridge.privacy import TOKEN_PREFIX
from tests.platforms.support import (
    EVENTS,
    SAMPLES,
    SCHEMAS,
    fields,
    fixture,
    json_values,
    normalise,
    privacy,
    schema_errors,
    validator,
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Which sample body a platform event is fuzzed from.
FIXTURE_FOR = {
    ("cyberbiz", "orders"): "cyberbiz/order.json",
    ("cyberbiz", "products"): "cyberbiz/product.json",
    ("cyberbiz", "variants"): "cyberbiz/variant.json",
    ("cyberbiz", "customers"): "cyberbiz/customer.json",
    ("cyberbiz", "apps"): "cyberbiz/app_uninstall.json",
    ("bentoweb", "order"): "bentoweb/order.json",
    ("bentoweb", "variant"): "bentoweb/variant.json",
    ("bentoweb", "product"): "bentoweb/product.json",
    ("standard", "order"): "standard/order_paid.json",
    ("standard", "variant"): "standard/variant_updated.json",
    ("standard", "product"): "standard/product_updated.json",
    ("standard", "customer"): "standard/customer_created.json",
    ("standard", "refund"): "standard/customer_created.json",
}
PLATFORM_EVENTS = [(p, e) for p, events in EVENTS.items() for e in events]


def _fixture_name(platform: str, event: str) -> str:
    noun = event.replace("/", ".").split(".")[0]
    return FIXTURE_FOR[(platform, noun)]


def _outcome(platform: str, event: str, payload: Any) -> CanonicalEvent | None:
    """Normalise; None for InvalidPayload (the only exception allowed)."""
    try:
        return normalise(platform, event, orjson.dumps(payload))
    except InvalidPayload:
        return None


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    result = copy.deepcopy(document)
    parent = result
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return result


# -- the schema files --------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES)
def test_schema_is_valid_draft_2020_12(entity: str) -> None:
    """Each schema file is a valid 2020-12 schema whose $id names the file."""
    schema = orjson.loads((SCHEMAS / f"{entity}.v1.json").read_bytes())
    validator(entity)  # check_schema inside
    expected = ("https://json-schema.org/draft/2020-12/schema", f"{entity}.v1.json")
    assert expected == (schema["$schema"], schema["$id"].rsplit("/", 1)[1])


@pytest.mark.parametrize("entity", ENTITIES)
def test_schema_requires_every_property(entity: str) -> None:
    """Every documented field is always present (null when unknown)."""
    schema = orjson.loads((SCHEMAS / f"{entity}.v1.json").read_bytes())
    assert sorted(schema["properties"]) == sorted(schema["required"])


# -- the seed samples --------------------------------------------------------------------------


@pytest.mark.parametrize(("platform", "name", "event"), SAMPLES)
def test_sample_event_is_schema_valid(platform: str, name: str, event: str) -> None:
    """Every sample body normalises to a schema-valid event."""
    assert [] == schema_errors(normalise(platform, event, orjson.dumps(fixture(name))))


@pytest.mark.parametrize(("platform", "name", "event"), SAMPLES)
@pytest.mark.parametrize("mode", ["encrypt", "redact", "passthrough"])
def test_sample_event_is_valid_in_every_privacy_mode(
    platform: str, name: str, event: str, mode: str
) -> None:
    """The privacy mode changes raw only, never validity."""
    body = orjson.dumps(fixture(name))
    assert [] == schema_errors(normalise(platform, event, body, privacy_mode=mode))


def _pii_strings(raw: Any) -> Iterator[str]:
    """The readable values behind every token in raw (long enough to be meaningful)."""
    p = privacy()
    stack = [raw]
    while stack:
        node = stack.pop()
        if isinstance(node, str) and node.startswith(TOKEN_PREFIX):
            stack.append({"revealed": p.decrypt(node), "plain": True})
        elif isinstance(node, dict) and node.get("plain") is True:
            for leaf in _leaves(node["revealed"]):
                meaningful = len(leaf) >= 4 or (len(leaf) >= 2 and not leaf.isascii())
                if meaningful and set(leaf) != {"*"}:
                    yield leaf
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _leaves(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    elif node is not None and not isinstance(node, bool):
        yield str(node)


@pytest.mark.parametrize(("platform", "name", "event"), SAMPLES)
def test_no_pii_outside_raw(platform: str, name: str, event: str) -> None:
    """No value that raw protects appears in the normalised fields."""
    normalised = normalise(platform, event, orjson.dumps(fixture(name)))
    text = orjson.dumps(fields(normalised)).decode()
    assert [] == [s for s in _pii_strings(normalised.value["raw"]) if s in text]


def test_schema_rejects_extra_fields_and_float_money() -> None:
    """The schemas are strict: an extra (PII) field or a float price fails validation."""
    event = normalise("bentoweb", "variant.update", orjson.dumps(fixture("bentoweb/variant.json")))
    extra = event.value | {"email": "a@example.com"}
    floaty = event.value | {"price": 100.0}
    errors = [list(validator("variant").iter_errors(v)) for v in (extra, floaty)]
    assert [True, True] == [bool(e) for e in errors]


# -- property tests: malformed input is InvalidPayload, anything else is schema-valid ----------


@pytest.mark.parametrize(("platform", "event"), PLATFORM_EVENTS)
@FUZZ
@given(payload=json_values)
def test_arbitrary_json_is_invalid_or_valid(platform: str, event: str, payload: Any) -> None:
    """Any JSON document: InvalidPayload or a schema-valid event, never another exception."""
    outcome = _outcome(platform, event, payload)
    assert [] == ([] if outcome is None else schema_errors(outcome))


@pytest.mark.parametrize(("platform", "event"), PLATFORM_EVENTS)
@FUZZ
@given(data=st.data(), value=json_values)
def test_mutated_sample_is_invalid_or_valid(
    platform: str, event: str, data: st.DataObject, value: Any
) -> None:
    """A sample with any one node replaced by any JSON value: InvalidPayload or schema-valid."""
    sample = fixture(_fixture_name(platform, event))
    path = data.draw(st.sampled_from(list(_paths(sample))))
    outcome = _outcome(platform, event, _replace(sample, path, value))
    assert [] == ([] if outcome is None else schema_errors(outcome))


ABSURD_QUANTITIES = [1e300, -1e300, 10**19, -(2**63), 2**63, 1e15, 1.5, "1" * 400, "NaN", True]
ABSURD_AMOUNTS = [1e300, -1e300, 10**19, -(2**63), 1e15, "1" * 400, "NaN", "Infinity", "1e5", []]


@pytest.mark.parametrize(
    ("platform", "event", "path", "absurd"),
    [
        (platform, event, path, absurd)
        for platform, event, path, values in [
            ("cyberbiz", "orders/create", ("line_items", 0, "quantity"), ABSURD_QUANTITIES),
            ("cyberbiz", "variants/update", ("inventory_quantity",), ABSURD_QUANTITIES),
            ("bentoweb", "order.new", ("data", "order", "order_item", 0, "qty"), ABSURD_QUANTITIES),
            ("bentoweb", "variant.update", ("new_stock",), ABSURD_QUANTITIES),
            ("cyberbiz", "orders/create", ("prices", "total_price"), ABSURD_AMOUNTS),
            ("bentoweb", "order.new", ("data", "order", "grand_total"), ABSURD_AMOUNTS),
            ("bentoweb", "variant.update", ("price",), ABSURD_AMOUNTS),
            ("standard", "order.paid", ("data", "total"), ABSURD_AMOUNTS),
        ]
        for absurd in values
    ],
)
def test_absurd_numbers_are_invalid_payload(
    platform: str, event: str, path: tuple[Any, ...], absurd: Any
) -> None:
    """Absurd quantities and amounts are rejected as InvalidPayload, not published."""
    sample = fixture(_fixture_name(platform, event))
    assert None is _outcome(platform, event, _replace(sample, path, absurd))


# -- property tests: generated well-formed payloads are always accepted ------------------------

ids = st.integers(min_value=1, max_value=2**53)
stock = st.integers(min_value=-(10**6), max_value=10**7)
prices = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False).map(float)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
CENTURY = 100 * 365 * 86400
local_times = st.integers(0, CENTURY).map(
    lambda s: (EPOCH + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S")
)

cyberbiz_variants = st.fixed_dictionaries(
    {"id": ids, "product_id": ids, "sku": st.text(max_size=30), "price": prices,
     "inventory_management": st.booleans(), "inventory_quantity": stock,
     "updated_at": local_times | st.none()},
)  # fmt: skip
cyberbiz_orders = st.fixed_dictionaries(
    {
        "id": ids,
        "order_number": st.text(max_size=20),
        "created_at": local_times,
        "updated_at": local_times,
        "prices": st.fixed_dictionaries({"total_price": prices, "shipping_rate_price": prices}),
        "line_items": st.lists(
            st.fixed_dictionaries(
                {
                    "id": ids,
                    "product_id": ids,
                    "product_variant_id": ids,
                    "price": prices,
                    "quantity": st.integers(min_value=1, max_value=10**4),
                }
            ),
            max_size=5,
        ),
        "customer": json_values,
        "receiver": json_values,
    }
)
bento_prices = prices | prices.map(lambda p: f"{p:.2f}")
bento_variants = st.fixed_dictionaries(
    {"product_id": ids, "variant_id": ids, "price": bento_prices, "old_stock": stock,
     "new_stock": stock, "active": st.sampled_from([0, 1, True, False]), "sku": st.text(max_size=20)},
)  # fmt: skip
bento_orders = st.fixed_dictionaries(
    {
        "order_id": ids,
        "date_created": local_times,
        "date_modified": local_times,
        "date_cancelled": st.sampled_from(["-0001-11-30 00:00:00", "0000-00-00 00:00:00"])
        | local_times,
        "grand_total": bento_prices,
        "email": st.emails(),
        "firstname": st.text(max_size=20),
        "order_item": st.lists(
            st.fixed_dictionaries(
                {
                    "order_item_id": ids,
                    "product_variant_id": ids,
                    "qty": st.integers(1, 100),
                    "price": bento_prices,
                }
            ),
            max_size=5,
        ),
    }
).map(lambda order: {"status": 1, "data": {"order": order}})


@pytest.mark.parametrize(
    ("platform", "event", "strategy"),
    [
        ("cyberbiz", "variants/update", cyberbiz_variants),
        ("cyberbiz", "orders/paid", cyberbiz_orders),
        ("bentoweb", "variant.update", bento_variants),
        ("bentoweb", "order.new", bento_orders),
    ],
)
@FUZZ
@given(data=st.data())
def test_generated_payloads_are_valid(
    platform: str, event: str, strategy: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    """Well-formed generated payloads always normalise to schema-valid events."""
    payload = data.draw(strategy)
    assert [] == schema_errors(normalise(platform, event, orjson.dumps(payload)))


@given(seconds=st.integers(0, CENTURY))
@FUZZ
def test_taipei_time_is_eight_hours_ahead_of_utc(seconds: int) -> None:
    """A Cyberbiz local time maps to the same instant minus eight hours, in RFC 3339 UTC."""
    local = EPOCH + timedelta(seconds=seconds)  # read as a wall-clock time in Taipei
    body = orjson.dumps({"id": 1, "updated_at": local.strftime("%Y-%m-%d %H:%M:%S")})
    expected = (local - timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expected == normalise("cyberbiz", "variants/update", body).value["updated_at"]
