"""Configuration: one TOML file plus ``env:NAME`` indirection for secrets.

``load_config`` validates everything up front and raises :class:`ConfigError` naming the bad key
(``shops[1].rate_limit``), so that a process never starts half-configured.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridge.errors import ConfigError

PLATFORMS = ("cyberbiz", "bentoweb", "standard")
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
    linger_ms: int = 5


@dataclass(frozen=True, slots=True)
class IngressConfig:
    max_body_bytes: int = DEFAULT_MAX_BODY
    publish_timeout: float = 4.0
    retry_after: int = 5
    dedup_capacity: int = 100_000
    dedup_window: float = 600.0


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    dsn: str = field(default=DEFAULT_OUTBOX_DSN, repr=False)  # may hold a password


@dataclass(frozen=True, slots=True)
class RelayConfig:
    lease_seconds: float = 30.0
    max_attempts: int = 12
    backoff_base: float = 0.5
    backoff_cap: float = 300.0
    request_timeout: float = 10.0
    poll_interval: float = 0.2


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
    variant: str | None = None
    product: str | None = None
    cyberbiz_group: str | None = None
    buffer: int = 0  # units held back: the member is set to max(0, pool - buffer)
    variants: tuple[str, ...] = ()  # a Cyberbiz group's variant ids (else read from the API)


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


def config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``BRIDGE_CONFIG``, then ``./bridge.toml``."""
    if explicit:
        return Path(explicit)
    if env.get("BRIDGE_CONFIG"):
        return Path(env["BRIDGE_CONFIG"])
    return Path("bridge.toml")


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read, resolve and validate the configuration; raise ConfigError naming the bad key."""
    env = os.environ if env is None else env
    file = config_path(path, env)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("--config", f"file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"cannot read {str(file)!r}: {exc}") from None
    return parse_config(text, env, source=str(file))


def parse_config(text: str, env: Mapping[str, str], source: str = "<string>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<toml>", f"not valid TOML: {exc}") from None
    return _Reader(env).config(raw, source)


class _Reader:
    """Walks the TOML document, remembering the dotted path for error messages."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    # -- primitives -------------------------------------------------------------------------

    def table(self, raw: Any, key: str) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ConfigError(key, f"must be a table, got {type(raw).__name__}")
        return raw

    def no_extra(self, raw: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        extra = sorted(set(raw) - allowed)
        if extra:
            where = f"{key}.{extra[0]}" if key else extra[0]
            raise ConfigError(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def string(self, raw: Mapping[str, Any], key: str, name: str, default: str | None) -> str:
        value = raw.get(name, default)
        full = f"{key}.{name}" if key else name
        if value is None:
            raise ConfigError(full, "is required")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(full, "must be a non-empty string")
        return value

    def secret(self, value: Any, key: str) -> str:
        """Resolve ``env:NAME``; plain strings are used as they are (fine for dev)."""
        if not isinstance(value, str) or not value:
            raise ConfigError(key, "must be a non-empty string or 'env:NAME'")
        if value.startswith("env:"):
            name = value[4:]
            if not name:
                raise ConfigError(key, "'env:' needs a variable name")
            resolved = self.env.get(name)
            if not resolved:
                raise ConfigError(key, f"environment variable {name} is not set")
            return resolved
        return value

    def optional_secret(self, raw: Mapping[str, Any], key: str, name: str) -> str | None:
        if name not in raw:
            return None
        return self.secret(raw[name], f"{key}.{name}")

    def number(
        self, raw: Mapping[str, Any], key: str, name: str, default: float, *, minimum: float
    ) -> float:
        value = raw.get(name, default)
        full = f"{key}.{name}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(full, f"must be a number, got {value!r}")
        if value < minimum:
            raise ConfigError(full, f"must be >= {minimum}, got {value}")
        return float(value)

    def integer(
        self, raw: Mapping[str, Any], key: str, name: str, default: int, *, minimum: int
    ) -> int:
        value = raw.get(name, default)
        full = f"{key}.{name}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(full, f"must be an integer, got {value!r}")
        if value < minimum:
            raise ConfigError(full, f"must be >= {minimum}, got {value}")
        return value

    def strings(self, raw: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
        value = raw.get(name, [])
        full = f"{key}.{name}"
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(full, "must be a list of non-empty strings")
        return tuple(value)

    # -- sections ---------------------------------------------------------------------------

    def config(self, raw: dict[str, Any], source: str) -> Config:
        self.no_extra(
            raw,
            "",
            {"kafka", "ingress", "outbox", "relay", "privacy", "shops", "sync_groups",
             "inventory_sync"},
        )  # fmt: skip
        shops = self.shops(raw.get("shops", []))
        return Config(
            kafka=self.kafka(self.table(raw.get("kafka"), "kafka")),
            ingress=self.ingress(self.table(raw.get("ingress"), "ingress")),
            outbox=self.outbox(self.table(raw.get("outbox"), "outbox")),
            relay=self.relay(self.table(raw.get("relay"), "relay")),
            privacy=self.privacy(self.table(raw.get("privacy"), "privacy")),
            shops=shops,
            sync_groups=self.sync_groups(raw.get("sync_groups", []), shops),
            inventory_sync=self.inventory_sync(
                self.table(raw.get("inventory_sync"), "inventory_sync")
            ),
            source=source,
        )

    def kafka(self, raw: dict[str, Any]) -> KafkaConfig:
        k = "kafka"
        self.no_extra(
            raw,
            k,
            {
                "bootstrap_servers", "topic_prefix", "partitions", "replication_factor",
                "security_protocol", "sasl_mechanism", "sasl_username", "sasl_password",
                "linger_ms",
            },
        )  # fmt: skip
        servers = self.env.get("BRIDGE_KAFKA_BOOTSTRAP_SERVERS") or self.string(
            raw, k, "bootstrap_servers", DEFAULT_BOOTSTRAP
        )
        prefix = self.string(raw, k, "topic_prefix", "commerce")
        if not all(c.isalnum() or c in "._-" for c in prefix):
            raise ConfigError(f"{k}.topic_prefix", "may hold only letters, digits, '.', '_', '-'")
        protocol = self.string(raw, k, "security_protocol", "PLAINTEXT")
        allowed = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
        if protocol not in allowed:
            raise ConfigError(f"{k}.security_protocol", f"must be one of {', '.join(allowed)}")
        mechanism = raw.get("sasl_mechanism")
        if mechanism is not None and mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ConfigError(
                f"{k}.sasl_mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            )
        if protocol.startswith("SASL") and mechanism is None:
            raise ConfigError(f"{k}.sasl_mechanism", f"is required with {protocol}")
        return KafkaConfig(
            bootstrap_servers=servers,
            topic_prefix=prefix,
            partitions=self.integer(raw, k, "partitions", 3, minimum=1),
            replication_factor=self.integer(raw, k, "replication_factor", 1, minimum=1),
            security_protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=self.optional_secret(raw, k, "sasl_username"),
            sasl_password=self.optional_secret(raw, k, "sasl_password"),
            linger_ms=self.integer(raw, k, "linger_ms", 5, minimum=0),
        )

    def ingress(self, raw: dict[str, Any]) -> IngressConfig:
        k = "ingress"
        self.no_extra(
            raw,
            k,
            {"max_body_bytes", "publish_timeout", "retry_after", "dedup_capacity", "dedup_window"},
        )
        return IngressConfig(
            max_body_bytes=self.integer(raw, k, "max_body_bytes", DEFAULT_MAX_BODY, minimum=1),
            publish_timeout=self.number(raw, k, "publish_timeout", 4.0, minimum=0.1),
            retry_after=self.integer(raw, k, "retry_after", 5, minimum=1),
            dedup_capacity=self.integer(raw, k, "dedup_capacity", 100_000, minimum=0),
            dedup_window=self.number(raw, k, "dedup_window", 600.0, minimum=0.0),
        )

    def outbox(self, raw: dict[str, Any]) -> OutboxConfig:
        k = "outbox"
        self.no_extra(raw, k, {"dsn"})
        dsn = self.env.get("BRIDGE_OUTBOX_DSN") or self.string(raw, k, "dsn", DEFAULT_OUTBOX_DSN)
        if dsn.startswith("env:"):
            dsn = self.secret(dsn, f"{k}.dsn")
        if not dsn.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ConfigError(f"{k}.dsn", "must start with sqlite:// or postgresql://")
        return OutboxConfig(dsn=dsn)

    def relay(self, raw: dict[str, Any]) -> RelayConfig:
        k = "relay"
        self.no_extra(
            raw,
            k,
            {"lease_seconds", "max_attempts", "backoff_base", "backoff_cap", "request_timeout",
             "poll_interval"},
        )  # fmt: skip
        return RelayConfig(
            lease_seconds=self.number(raw, k, "lease_seconds", 30.0, minimum=1.0),
            max_attempts=self.integer(raw, k, "max_attempts", 12, minimum=1),
            backoff_base=self.number(raw, k, "backoff_base", 0.5, minimum=0.01),
            backoff_cap=self.number(raw, k, "backoff_cap", 300.0, minimum=0.1),
            request_timeout=self.number(raw, k, "request_timeout", 10.0, minimum=0.1),
            poll_interval=self.number(raw, k, "poll_interval", 0.2, minimum=0.01),
        )

    def inventory_sync(self, raw: dict[str, Any]) -> InventorySyncConfig:
        k = "inventory_sync"
        self.no_extra(raw, k, {"reconcile_interval", "echo_timeout"})
        return InventorySyncConfig(
            reconcile_interval=self.number(raw, k, "reconcile_interval", 600.0, minimum=0.0),
            echo_timeout=self.number(raw, k, "echo_timeout", 300.0, minimum=1.0),
        )

    def privacy(self, raw: dict[str, Any]) -> PrivacyConfig:
        k = "privacy"
        self.no_extra(raw, k, {"mode", "key", "old_keys"})
        mode = raw.get("mode", "encrypt")
        if mode not in PRIVACY_MODES:
            raise ConfigError(f"{k}.mode", f"must be one of {', '.join(PRIVACY_MODES)}")
        if mode != "encrypt":
            return PrivacyConfig(mode=mode)
        if "key" not in raw:
            raise ConfigError(
                f"{k}.key", "is required with mode = 'encrypt' (e.g. 'env:BRIDGE_PII_KEY')"
            )
        keys: dict[str, bytes] = {}
        active = self._aes_key(raw["key"], f"{k}.key", keys)
        old = raw.get("old_keys", [])
        if not isinstance(old, list):
            raise ConfigError(f"{k}.old_keys", "must be a list of keys")
        for i, value in enumerate(old):
            self._aes_key(value, f"{k}.old_keys[{i}]", keys)
        return PrivacyConfig(mode="encrypt", keys=keys, active_key_id=active)

    def _aes_key(self, value: Any, key: str, into: dict[str, bytes]) -> str:
        """A key is base64 (or hex) of 16, 24 or 32 bytes, optionally as ``<kid>:<key>``."""
        from bridge.privacy import key_id  # local import: privacy imports this module's types

        text = self.secret(value, key)
        kid, _, material = text.rpartition(":")
        try:
            secret = (
                bytes.fromhex(material)
                if len(material) in (32, 48, 64)
                and all(c in "0123456789abcdefABCDEF" for c in material)
                else base64.b64decode(material, validate=True)
            )
        except (binascii.Error, ValueError):
            raise ConfigError(key, "must be base64 or hex of a 16, 24 or 32 byte key") from None
        if len(secret) not in (16, 24, 32):
            raise ConfigError(key, f"AES key must be 16, 24 or 32 bytes, got {len(secret)}")
        kid = kid or key_id(secret)
        if not kid.isalnum():
            raise ConfigError(key, "key id must be alphanumeric")
        into[kid] = secret
        return kid

    def shops(self, raw: Any) -> dict[str, ShopConfig]:
        if not isinstance(raw, list):
            raise ConfigError("shops", "must be an array of tables ([[shops]])")
        shops: dict[str, ShopConfig] = {}
        for i, item in enumerate(raw):
            k = f"shops[{i}]"
            item = self.table(item, k)
            self.no_extra(
                item,
                k,
                {
                    "id", "platform", "api_base", "api_token", "client_id", "client_secret",
                    "webhook_secrets", "rate_limit", "burst", "max_request_bytes", "allowed_ips",
                    "stock_source",
                },
            )  # fmt: skip
            shop_id = self.string(item, k, "id", None)
            if not all(c.isalnum() or c in "._-" for c in shop_id):
                raise ConfigError(f"{k}.id", "may hold only letters, digits, '.', '_', '-'")
            if shop_id in shops:
                raise ConfigError(f"{k}.id", f"duplicate shop id {shop_id!r}")
            platform = self.string(item, k, "platform", None)
            if platform not in PLATFORMS:
                raise ConfigError(f"{k}.platform", f"must be one of {', '.join(PLATFORMS)}")
            secrets_raw = item.get("webhook_secrets", [])
            if not isinstance(secrets_raw, list):
                raise ConfigError(f"{k}.webhook_secrets", "must be a list")
            secrets = tuple(
                self.secret(s, f"{k}.webhook_secrets[{j}]") for j, s in enumerate(secrets_raw)
            )
            if not secrets:
                raise ConfigError(f"{k}.webhook_secrets", "needs at least one secret")
            api_base = item.get("api_base", "")
            if api_base and (
                not isinstance(api_base, str) or not api_base.startswith(("http://", "https://"))
            ):
                raise ConfigError(f"{k}.api_base", "must be an http(s) URL")
            shops[shop_id] = ShopConfig(
                id=shop_id,
                platform=platform,
                api_base=api_base.rstrip("/"),
                api_token=self.optional_secret(item, k, "api_token"),
                client_id=self.optional_secret(item, k, "client_id"),
                client_secret=self.optional_secret(item, k, "client_secret"),
                webhook_secrets=secrets,
                rate_limit=self.number(item, k, "rate_limit", 5.0, minimum=0.01),
                burst=self.integer(item, k, "burst", 1, minimum=1),
                max_request_bytes=self.integer(
                    item, k, "max_request_bytes", DEFAULT_MAX_BODY, minimum=1
                ),
                allowed_ips=self.strings(item, k, "allowed_ips"),
                stock_source=self.stock_source(item, k),
            )
        return shops

    def stock_source(self, raw: Mapping[str, Any], key: str) -> StockSource:
        value = raw.get("stock_source", "levels")
        if value == "orders":
            return "orders"
        if value != "levels":
            raise ConfigError(f"{key}.stock_source", f"must be one of {', '.join(STOCK_SOURCES)}")
        return "levels"

    def sync_groups(self, raw: Any, shops: Mapping[str, ShopConfig]) -> tuple[SyncGroup, ...]:
        if not isinstance(raw, list):
            raise ConfigError("sync_groups", "must be an array of tables ([[sync_groups]])")
        groups: list[SyncGroup] = []
        seen: set[str] = set()
        claimed: dict[tuple[str, str], str] = {}
        for i, item in enumerate(raw):
            k = f"sync_groups[{i}]"
            item = self.table(item, k)
            self.no_extra(item, k, {"id", "members"})
            group_id = self.string(item, k, "id", None)
            if group_id in seen:
                raise ConfigError(f"{k}.id", f"duplicate sync group id {group_id!r}")
            seen.add(group_id)
            members_raw = item.get("members")
            if not isinstance(members_raw, list) or len(members_raw) < 2:
                raise ConfigError(f"{k}.members", "needs at least two members")
            members = [
                self.sync_member(m, f"{k}.members[{j}]", shops, claimed, group_id)
                for j, m in enumerate(members_raw)
            ]
            groups.append(SyncGroup(group_id, tuple(members)))
        return tuple(groups)

    def sync_member(
        self,
        raw: Any,
        mk: str,
        shops: Mapping[str, ShopConfig],
        claimed: dict[tuple[str, str], str],
        group_id: str,
    ) -> SyncMember:
        m = self.table(raw, mk)
        self.no_extra(m, mk, {"shop", "variant", "product", "cyberbiz_group", "buffer", "variants"})
        shop = self.string(m, mk, "shop", None)
        if shop not in shops:
            raise ConfigError(f"{mk}.shop", f"unknown shop {shop!r} (known: {', '.join(shops)})")
        values = {f: m.get(f) for f in ("variant", "product", "cyberbiz_group")}
        for f, v in values.items():
            if v is not None and not isinstance(v, str | int):
                raise ConfigError(f"{mk}.{f}", "must be a string id")
        variant = None if values["variant"] is None else str(values["variant"])
        group = None if values["cyberbiz_group"] is None else str(values["cyberbiz_group"])
        if (variant is None) == (group is None):
            raise ConfigError(mk, "needs exactly one of 'variant' or 'cyberbiz_group'")
        if group is not None and shops[shop].platform != "cyberbiz":
            raise ConfigError(f"{mk}.cyberbiz_group", "only Cyberbiz shops have sync groups")
        variants_raw = m.get("variants", [])
        if not isinstance(variants_raw, list) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) and str(v) for v in variants_raw
        ):
            raise ConfigError(f"{mk}.variants", "must be a list of variant ids")
        variants = tuple(str(v) for v in variants_raw)
        if variants and group is None:
            raise ConfigError(f"{mk}.variants", "is only for a 'cyberbiz_group' member")
        targets = [(shop, f"variant:{variant}" if variant else f"group:{group}")]
        targets += [(shop, f"variant:{v}") for v in variants]
        for target in targets:
            if target in claimed:
                where = mk if target == targets[0] else f"{mk}.variants"
                raise ConfigError(where, f"already a member of sync group {claimed[target]!r}")
            claimed[target] = group_id
        product = None if values["product"] is None else str(values["product"])
        buffer = self.integer(m, mk, "buffer", 0, minimum=0)
        return SyncMember(shop, variant, product, group, buffer, variants)
