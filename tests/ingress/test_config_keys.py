"""The ingress and Kafka config keys issue 9 added: defaults and validation."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from tests.support import make_config

SHOP = '[privacy]\nmode = "redact"\n[[shops]]\nid = "s"\nplatform = "bentoweb"\nwebhook_secrets = ["t"]\n'


def test_defaults() -> None:
    """Ops on 9090, 1024 bodies / 64 MiB buffered / 30 s per body, 24 h Cyberbiz age."""
    ingress = parse_config(SHOP, {}).ingress
    assert (9090, 1024, 64 * 1024 * 1024, 30.0, 86_400.0) == (
        ingress.ops_port,
        ingress.max_concurrent_bodies,
        ingress.max_buffered_bytes,
        ingress.body_timeout,
        ingress.max_event_age,
    )


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    """kafka.min_insync_replicas may not exceed kafka.replication_factor (no write could pass)."""
    text = "[kafka]\nreplication_factor = 2\nmin_insync_replicas = 3\n" + SHOP
    with pytest.raises(ConfigError, match=r"kafka\.min_insync_replicas"):
        parse_config(text, {})


def test_min_insync_replicas_is_read() -> None:
    """An explicit kafka.min_insync_replicas wins over the default."""
    text = "[kafka]\nreplication_factor = 3\nmin_insync_replicas = 3\n" + SHOP
    assert 3 == parse_config(text, {}).kafka.min_isr
    assert 1 == make_config().kafka.min_isr
