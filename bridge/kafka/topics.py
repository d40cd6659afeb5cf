"""Topic names (ARCHITECTURE §4), creating them, and aiokafka client options from KafkaConfig."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context

from bridge.config import KafkaConfig
from bridge.errors import BridgeError
from bridge.log import get_logger

log = get_logger(__name__)

# In the order of ARCHITECTURE §4.
SUFFIXES = ("orders", "products", "variants", "customers", "other", "commands", "deliveries", "dlq")
_ENTITY_SUFFIX = {
    "order": "orders",
    "product": "products",
    "variant": "variants",
    "customer": "customers",
}


class TopicError(BridgeError):
    """The broker refused to create a topic (e.g. replication factor above the broker count)."""


@dataclass(frozen=True, slots=True)
class Topics:
    """The bridge's topic names under one prefix: ``Topics("shop").orders == "shop.orders"``."""

    prefix: str = "commerce"

    @classmethod
    def from_config(cls, cfg: KafkaConfig) -> Topics:
        return cls(cfg.topic_prefix)

    @property
    def orders(self) -> str:
        return f"{self.prefix}.orders"

    @property
    def products(self) -> str:
        return f"{self.prefix}.products"

    @property
    def variants(self) -> str:
        return f"{self.prefix}.variants"

    @property
    def customers(self) -> str:
        return f"{self.prefix}.customers"

    @property
    def other(self) -> str:
        """Recognised events no entity topic is for."""
        return f"{self.prefix}.other"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def deliveries(self) -> str:
        return f"{self.prefix}.deliveries"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def for_entity(self, entity: str) -> str:
        """The topic for a canonical event's entity (``"order"`` → orders); unknown → other."""
        return f"{self.prefix}.{_ENTITY_SUFFIX.get(entity, 'other')}"

    def all(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}.{suffix}" for suffix in SUFFIXES)


def client_options(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection keyword arguments shared by aiokafka producers, consumers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        # The system CA bundle unless kafka.ssl_cafile names one.
        options["ssl_context"] = create_ssl_context(cafile=cfg.ssl_cafile)
    if cfg.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = cfg.sasl_mechanism
        options["sasl_plain_username"] = cfg.sasl_username
        options["sasl_plain_password"] = cfg.sasl_password
    return options


async def ensure_topics(
    kafka_cfg: KafkaConfig,
    partitions: int | None = None,
    names: Iterable[str] | None = None,
    *,
    ready_timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created now.

    ``names`` defaults to all eight topics under ``kafka_cfg.topic_prefix``; ``partitions`` to
    ``kafka_cfg.partitions``. Existing topics are left as they are (also when another process
    creates them concurrently). Returns once every created partition has a leader, so producers
    can use the topics at once.
    """
    wanted = list(dict.fromkeys(Topics.from_config(kafka_cfg).all() if names is None else names))
    count = kafka_cfg.partitions if partitions is None else partitions
    admin = AIOKafkaAdminClient(**client_options(kafka_cfg), client_id="commerce-bridge-topics")
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(name, count, kafka_cfg.replication_factor) for name in missing]
        )
        created = []
        for item in response.to_object()["topic_errors"]:
            code = item["error_code"]
            if code == 0:
                created.append(item["topic"])
            elif code != TopicAlreadyExistsError.errno:
                reason = item.get("error_message") or for_code(code).__name__
                raise TopicError(f"could not create topic {item['topic']}: {reason}")
        await _wait_for_leaders(admin, created, ready_timeout)
    finally:
        await admin.close()
    created.sort(key=wanted.index)
    log.info("kafka_topics_created", topics=created, partitions=count)
    return created


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    if not names:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        described = await admin.describe_topics(names)
        if all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        if loop.time() >= deadline:
            raise TopicError(f"topics {', '.join(names)} have no leader after {timeout:.0f}s")
        await asyncio.sleep(0.05)
