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
from pathlib import Path
from typing import Any

from bridge import platforms
from bridge.errors import ConfigError
from bridge.privacy import key_id
from bridge.settings import (
    MIN_RETENTION,
    PRIVACY_MODES,
    STOCK_SOURCES,
    Config,
    IngressConfig,
    InventorySyncConfig,
    KafkaConfig,
    OutboxConfig,
    PrivacyConfig,
    PrivacyMode,
    RelayConfig,
    ShopConfig,
    StockSource,
    SyncGroup,
    SyncMember,
)
from bridge.targets import PRODUCT_FIELD, TargetError

__all__ = [
    "Config",
    "IngressConfig",
    "InventorySyncConfig",
    "KafkaConfig",
    "OutboxConfig",
    "PrivacyConfig",
    "PrivacyMode",
    "RelayConfig",
    "ShopConfig",
    "SyncGroup",
    "SyncMember",
    "config_path",
    "load_config",
    "parse_config",
]


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
                "ssl_cafile", "linger_ms", "min_insync_replicas",
            },
        )  # fmt: skip
        d = KafkaConfig()
        servers = self.env.get("BRIDGE_KAFKA_BOOTSTRAP_SERVERS") or self.string(
            raw, k, "bootstrap_servers", d.bootstrap_servers
        )
        prefix = self.string(raw, k, "topic_prefix", d.topic_prefix)
        if not all(c.isalnum() or c in "._-" for c in prefix):
            raise ConfigError(f"{k}.topic_prefix", "may hold only letters, digits, '.', '_', '-'")
        protocol = self.string(raw, k, "security_protocol", d.security_protocol)
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
            partitions=self.integer(raw, k, "partitions", d.partitions, minimum=1),
            replication_factor=self.integer(
                raw, k, "replication_factor", d.replication_factor, minimum=1
            ),
            security_protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=self.optional_secret(raw, k, "sasl_username"),
            sasl_password=self.optional_secret(raw, k, "sasl_password"),
            ssl_cafile=self._cafile(raw, k),
            linger_ms=self.integer(raw, k, "linger_ms", d.linger_ms, minimum=0),
            min_insync_replicas=self._min_isr(raw, k),
        )

    def _min_isr(self, raw: dict[str, Any], k: str) -> int | None:
        if raw.get("min_insync_replicas") is None:
            return None
        value = self.integer(raw, k, "min_insync_replicas", 1, minimum=1)
        replicas = self.integer(raw, k, "replication_factor", 1, minimum=1)
        if value > replicas:
            raise ConfigError(
                f"{k}.min_insync_replicas", f"must be <= replication_factor ({replicas})"
            )
        return value

    def _cafile(self, raw: Mapping[str, Any], k: str) -> str | None:
        value = raw.get("ssl_cafile")
        if value is None:
            return None
        if not isinstance(value, str) or not Path(value).is_file():
            raise ConfigError(f"{k}.ssl_cafile", f"must name a readable CA file, got {value!r}")
        return value

    def ingress(self, raw: dict[str, Any]) -> IngressConfig:
        k = "ingress"
        self.no_extra(
            raw,
            k,
            {
                "max_body_bytes", "publish_timeout", "retry_after", "dedup_capacity",
                "dedup_window", "ops_port", "max_concurrent_bodies", "max_buffered_bytes",
                "body_timeout", "max_event_age",
            },
        )  # fmt: skip
        d = IngressConfig()
        return IngressConfig(
            max_body_bytes=self.integer(raw, k, "max_body_bytes", d.max_body_bytes, minimum=1),
            publish_timeout=self.number(raw, k, "publish_timeout", d.publish_timeout, minimum=0.1),
            retry_after=self.integer(raw, k, "retry_after", d.retry_after, minimum=1),
            dedup_capacity=self.integer(raw, k, "dedup_capacity", d.dedup_capacity, minimum=0),
            dedup_window=self.number(raw, k, "dedup_window", d.dedup_window, minimum=0.0),
            ops_port=self.integer(raw, k, "ops_port", d.ops_port, minimum=0),
            max_concurrent_bodies=self.integer(
                raw, k, "max_concurrent_bodies", d.max_concurrent_bodies, minimum=1
            ),
            max_buffered_bytes=self.integer(
                raw, k, "max_buffered_bytes", d.max_buffered_bytes, minimum=1
            ),
            body_timeout=self.number(raw, k, "body_timeout", d.body_timeout, minimum=0.1),
            max_event_age=self.number(raw, k, "max_event_age", d.max_event_age, minimum=0.0),
        )

    def outbox(self, raw: dict[str, Any]) -> OutboxConfig:
        k = "outbox"
        self.no_extra(raw, k, {"dsn", "retention"})
        d = OutboxConfig()
        dsn = self.env.get("BRIDGE_OUTBOX_DSN") or self.string(raw, k, "dsn", d.dsn)
        if dsn.startswith("env:"):
            dsn = self.secret(dsn, f"{k}.dsn")
        if not dsn.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ConfigError(f"{k}.dsn", "must start with sqlite:// or postgresql://")
        retention = self.number(raw, k, "retention", d.retention, minimum=0.0)
        if 0 < retention < MIN_RETENTION:
            raise ConfigError(
                f"{k}.retention",
                f"must be 0 (keep finished rows) or >= {MIN_RETENTION:g} s, got {retention:g}",
            )
        return OutboxConfig(dsn=dsn, retention=retention)

    def relay(self, raw: dict[str, Any]) -> RelayConfig:
        k = "relay"
        self.no_extra(
            raw,
            k,
            {"lease_seconds", "max_attempts", "backoff_base", "backoff_cap", "request_timeout",
             "poll_interval", "max_retry_after"},
        )  # fmt: skip
        d = RelayConfig()
        return RelayConfig(
            lease_seconds=self.number(raw, k, "lease_seconds", d.lease_seconds, minimum=1.0),
            max_attempts=self.integer(raw, k, "max_attempts", d.max_attempts, minimum=1),
            backoff_base=self.number(raw, k, "backoff_base", d.backoff_base, minimum=0.01),
            backoff_cap=self.number(raw, k, "backoff_cap", d.backoff_cap, minimum=0.1),
            request_timeout=self.number(raw, k, "request_timeout", d.request_timeout, minimum=0.1),
            poll_interval=self.number(raw, k, "poll_interval", d.poll_interval, minimum=0.01),
            max_retry_after=self.number(raw, k, "max_retry_after", d.max_retry_after, minimum=1.0),
        )

    def inventory_sync(self, raw: dict[str, Any]) -> InventorySyncConfig:
        k, d = "inventory_sync", InventorySyncConfig()
        self.no_extra(raw, k, {"reconcile_interval", "echo_timeout"})
        return InventorySyncConfig(
            reconcile_interval=self.number(
                raw, k, "reconcile_interval", d.reconcile_interval, minimum=0.0
            ),
            echo_timeout=self.number(raw, k, "echo_timeout", d.echo_timeout, minimum=1.0),
        )

    def privacy(self, raw: dict[str, Any]) -> PrivacyConfig:
        k = "privacy"
        self.no_extra(raw, k, {"mode", "key", "old_keys"})
        mode = raw.get("mode", PrivacyConfig().mode)
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
            shop = self.shop(self.table(item, f"shops[{i}]"), f"shops[{i}]")
            if shop.id in shops:
                raise ConfigError(f"shops[{i}].id", f"duplicate shop id {shop.id!r}")
            platforms.get(shop.platform).check_shop(shop, f"shops[{i}]")
            shops[shop.id] = shop
        return shops

    def shop(self, item: dict[str, Any], k: str) -> ShopConfig:
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
        platform = self.string(item, k, "platform", None)
        if platform not in platforms.names():
            raise ConfigError(f"{k}.platform", f"must be one of {', '.join(platforms.names())}")
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
        d = ShopConfig(id=shop_id, platform=platform)
        return ShopConfig(
            id=shop_id,
            platform=platform,
            api_base=api_base.rstrip("/"),
            api_token=self.optional_secret(item, k, "api_token"),
            client_id=self.optional_secret(item, k, "client_id"),
            client_secret=self.optional_secret(item, k, "client_secret"),
            webhook_secrets=secrets,
            rate_limit=self.number(item, k, "rate_limit", d.rate_limit, minimum=0.01),
            burst=self.integer(item, k, "burst", d.burst, minimum=1),
            max_request_bytes=self.integer(
                item, k, "max_request_bytes", d.max_request_bytes, minimum=1
            ),
            allowed_ips=self.strings(item, k, "allowed_ips"),
            stock_source=self.stock_source(item, k),
        )

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
            members = []
            for j, m in enumerate(members_raw):
                mk = f"{k}.members[{j}]"
                member = self.member(self.table(m, mk), mk, shops)
                claims = [(member.shop, member.target.key)]
                claims += [(member.shop, f"variant:{v}") for v in member.variants]
                for n, claim in enumerate(claims):
                    if claim in claimed:
                        where = f"{mk}.variants" if n else mk
                        raise ConfigError(
                            where, f"already a member of sync group {claimed[claim]!r}"
                        )
                    claimed[claim] = group_id
                members.append(member)
            groups.append(SyncGroup(group_id, tuple(members)))
        return tuple(groups)

    def member(self, m: dict[str, Any], mk: str, shops: Mapping[str, ShopConfig]) -> SyncMember:
        """``{shop, <target field>, product?}``; the shop's platform says which fields it has."""
        every = platforms.target_codec()
        self.no_extra(m, mk, {"shop", PRODUCT_FIELD, "buffer", "variants", *every.names})
        shop = self.string(m, mk, "shop", None)
        if shop not in shops:
            raise ConfigError(f"{mk}.shop", f"unknown shop {shop!r} (known: {', '.join(shops)})")
        values: dict[str, str | None] = {}
        for name in (*every.names, PRODUCT_FIELD):
            value = m.get(name)
            if value is not None and not isinstance(value, str | int):
                raise ConfigError(f"{mk}.{name}", "must be a string id")
            values[name] = None if value is None else str(value)
        try:
            named, _ = every.named(values)
        except TargetError as exc:
            names = " or ".join(f"'{n}'" for n in every.names)
            raise ConfigError(mk, f"needs exactly one of {names}") from exc
        plugin = platforms.get(shops[shop].platform)
        if plugin.targets.field(named.name) is None:
            owners = " or ".join(platforms.owners_of(named.name))
            raise ConfigError(f"{mk}.{named.name}", f"only {owners} shops have {named.what}")
        target = plugin.targets.parse(values)
        variants = self.strings_or_ids(m, mk, "variants")
        if variants and target.kind == "variant":
            raise ConfigError(f"{mk}.variants", "is only for a member that is a platform's group")
        buffer = self.integer(m, mk, "buffer", 0, minimum=0)
        return SyncMember(shop, target, buffer, variants)

    def strings_or_ids(self, raw: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
        value = raw.get(name, [])
        if not isinstance(value, list) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) and str(v) for v in value
        ):
            raise ConfigError(f"{key}.{name}", "must be a list of ids")
        return tuple(str(v) for v in value)
