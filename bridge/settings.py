"""The configuration's value types, each default stated once (the reader in ``bridge.config``
uses these defaults, it does not repeat them). No I/O, no imports from the rest of the bridge
except the target value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

from bridge.targets import StockTarget

PRIVACY_MODES = ("encrypt", "redact", "passthrough")
DEFAULT_MAX_BODY = 2 * 1024 * 1024
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_OUTBOX_DSN = "sqlite:///var/bridge/outbox.db"

PrivacyMode = Literal["encrypt", "redact", "passthrough"]
StockSource = Literal["levels", "orders"]
STOCK_SOURCES = ("levels", "orders")


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = "commerce"
    partitions: int = 3
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None  # CA bundle for SSL/SASL_SSL; None: the system's
    linger_ms: int = 5
    # acks=all waits for this many in-sync replicas; None: min(2, replication_factor)
    min_insync_replicas: int | None = None

    @property
    def min_isr(self) -> int:
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return min(2, self.replication_factor)


@dataclass(frozen=True, slots=True)
class IngressConfig:
    max_body_bytes: int = DEFAULT_MAX_BODY
    publish_timeout: float = 4.0
    retry_after: int = 5
    dedup_capacity: int = 100_000
    dedup_window: float = 600.0
    ops_port: int = 9090  # /healthz, /readyz, /metrics: never on the public webhook port
    max_concurrent_bodies: int = 1024  # bodies being received at once (503 beyond)
    max_buffered_bytes: int = 64 * 1024 * 1024  # bytes of bodies held at once (503 beyond)
    body_timeout: float = 30.0  # seconds a body may take to arrive (408 beyond)
    max_event_age: float = 86_400.0  # replay bound on bodies with updated_at (0: off)


MIN_RETENTION = 3600.0  # a finished row is kept at least an hour (its key dedups redeliveries)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    dsn: str = field(default=DEFAULT_OUTBOX_DSN, repr=False)  # may hold a password
    # Seconds a done/dead/superseded row is kept after its last update; the relay purges older
    # ones in the background. 0: keep them (purge only with ``commerce-bridge outbox purge``).
    retention: float = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class RelayConfig:
    lease_seconds: float = 30.0
    max_attempts: int = 12
    backoff_base: float = 0.5
    backoff_cap: float = 300.0
    request_timeout: float = 10.0  # the whole request, connect to answer (one deadline)
    poll_interval: float = 0.2
    max_retry_after: float = 3600.0  # a platform's Retry-After is capped here


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    mode: PrivacyMode = "encrypt"
    # key id -> 32-byte AES key; ``active_key_id`` encrypts, every key decrypts.
    keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    active_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class ShopConfig:
    id: str
    platform: str
    api_base: str = ""
    api_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    rate_limit: float = 5.0
    burst: int = 1
    max_request_bytes: int = DEFAULT_MAX_BODY
    allowed_ips: tuple[str, ...] = ()
    stock_source: StockSource = "levels"  # what moves inventory-sync pools: level or order events


@dataclass(frozen=True, slots=True)
class SyncMember:
    shop: str
    target: StockTarget
    buffer: int = 0  # units held back: the member is set to max(0, pool - buffer)
    variants: tuple[str, ...] = ()  # a platform group's variant ids (else read from its API)


@dataclass(frozen=True, slots=True)
class InventorySyncConfig:
    reconcile_interval: float = 600.0  # seconds between reconcile passes; 0 = off
    echo_timeout: float = 300.0  # an un-echoed write older than this is taken as lost


@dataclass(frozen=True, slots=True)
class SyncGroup:
    id: str
    members: tuple[SyncMember, ...]


@dataclass(frozen=True, slots=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    shops: Mapping[str, ShopConfig] = field(default_factory=dict)
    sync_groups: tuple[SyncGroup, ...] = ()
    inventory_sync: InventorySyncConfig = field(default_factory=InventorySyncConfig)
    source: str = "<defaults>"

    def shop(self, shop_id: str) -> ShopConfig | None:
        return self.shops.get(shop_id)


def default_of(cls: type[Any], name: str) -> Any:
    """The declared default of dataclass field ``name`` (for the config reader)."""
    for spec in fields(cls):
        if spec.name == name:
            if spec.default is not MISSING:
                return spec.default
            if spec.default_factory is not MISSING:
                return spec.default_factory()
            break
    raise KeyError(f"{cls.__name__}.{name} has no default")
