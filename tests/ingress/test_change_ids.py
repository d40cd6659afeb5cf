"""Published ids tell changes apart (issue 9): the real ingress app against the real broker."""

from __future__ import annotations

import orjson
import pytest

from bridge.config import Config
from bridge.ingress.app import create_app
from tests.ingress.test_kafka import post, read_topic, serve_ingress
from tests.support import fixture_bytes

pytestmark = pytest.mark.kafka

VARIANT = fixture_bytes("bentoweb/variant.json")
STOCK_5 = VARIANT.replace(b'"new_stock": 0', b'"new_stock": 5')
STOCK_4 = VARIANT.replace(b'"new_stock": 0', b'"new_stock": 4')


def ce_ids(records: list[object]) -> list[str]:
    return [dict(r.headers)["ce_id"].decode() for r in records]  # type: ignore[attr-defined]


async def test_bentoweb_5_4_5_4_is_four_changes_and_a_retry_is_a_duplicate(
    ingress: str, config: Config
) -> None:
    """5→4, 4→5, 5→4 again: every change is published under its own id; a retry right after
    the last one is answered 200 duplicate with that id and not published."""
    answers = [
        await post(ingress, config, "bento-bkk", body, "variant.update")
        for body in (STOCK_4, STOCK_5, STOCK_4)
    ]
    retry = await post(ingress, config, "bento-bkk", STOCK_4, "variant.update")
    assert [202, 202, 202, 200] == [a.status_code for a in [*answers, retry]]
    ids = [a.json()["id"] for a in answers]
    assert 3 == len(set(ids))
    assert {"id": ids[2], "duplicate": True} == retry.json()
    records = await read_topic(config, f"{config.kafka.topic_prefix}.variants", 3)
    assert ids == ce_ids(records)
    assert ids == [orjson.loads(r.value)["id"] for r in records]


def cyberbiz_customer(name: str) -> bytes:
    body = orjson.loads(fixture_bytes("cyberbiz/customer.json"))
    body["name"] = name  # PII: not in the normalised fields, updated_at unchanged
    return orjson.dumps(body)


@pytest.mark.parametrize(
    ("event", "fixture", "field", "topic"),
    [
        ("customers/update", "cyberbiz/customer.json", "name", "customers"),
        ("orders/update", "cyberbiz/order.json", "note", "orders"),
    ],
)
async def test_cyberbiz_pii_only_changes_in_one_second_are_both_published(
    ingress: str, config: Config, event: str, fixture: str, field: str, topic: str
) -> None:
    """Two Cyberbiz edits with the same updated_at that differ only in PII are two records."""
    bodies = []
    for value in ("first", "second"):
        body = orjson.loads(fixture_bytes(fixture))
        body[field] = value
        bodies.append(orjson.dumps(body))
    answers = [await post(ingress, config, "cb-taipei", body, event) for body in bodies]
    assert [202, 202] == [a.status_code for a in answers]
    records = await read_topic(config, f"{config.kafka.topic_prefix}.{topic}", 2)
    assert [a.json()["id"] for a in answers] == ce_ids(records)
    assert 2 == len(set(ce_ids(records)))


async def test_a_redelivery_on_another_replica_is_published_again_with_the_same_id(
    config: Config,
) -> None:
    """Two ingress replicas: a platform retry landing on the other one is published a second time
    (at-least-once) under the same id, the platform's, since it is that replica's first change."""
    async with (
        serve_ingress(create_app(config)) as one,
        serve_ingress(create_app(config)) as two,
    ):
        first = await post(one, config, "bento-bkk", STOCK_5, "variant.update")
        again = await post(two, config, "bento-bkk", STOCK_5, "variant.update")
        same_replica = await post(one, config, "bento-bkk", STOCK_5, "variant.update")
    assert (202, 202, 200) == (first.status_code, again.status_code, same_replica.status_code)
    assert first.json()["id"] == again.json()["id"] == same_replica.json()["id"]
    records = await read_topic(config, f"{config.kafka.topic_prefix}.variants", 2)
    assert [first.json()["id"]] * 2 == ce_ids(records)
