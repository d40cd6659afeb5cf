"""Shared test configuration and doubles (doubles only for pure unit tests of the HTTP layer)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import orjson

from bridge.config import Config, parse_config
from bridge.errors import PublishUnavailable
from bridge.kafka.publisher import Headers, Published

FIXTURES = Path(__file__).parents[1] / "bridge" / "data" / "samples"
PII_KEY = base64.b64encode(bytes(range(32))).decode()
CB_SECRET = "cb-app-secret"
CB_OLD_SECRET = "cb-app-secret-previous"
BENTO_TOKEN = "bento-token-123"
STD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-secret-key!!").decode()


def config_text(prefix: str = "commerce", bootstrap: str = "127.0.0.1:9", extra: str = "") -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
linger_ms = 1

[ingress]
max_body_bytes = 2097152
publish_timeout = 4.0
max_event_age = 0  # the Cyberbiz samples are dated 2024

[privacy]
mode = "encrypt"
key = "{PII_KEY}"

[[shops]]
id = "cb-taipei"
platform = "cyberbiz"
api_token = "tok"
webhook_secrets = ["{CB_SECRET}", "{CB_OLD_SECRET}"]

[[shops]]
id = "bento-bkk"
platform = "bentoweb"
webhook_secrets = ["{BENTO_TOKEN}"]

[[shops]]
id = "std-shop"
platform = "standard"
webhook_secrets = ["{STD_SECRET}"]
{extra}
"""


def make_config(
    prefix: str = "commerce", bootstrap: str = "127.0.0.1:9", extra: str = ""
) -> Config:
    return parse_config(config_text(prefix, bootstrap, extra), {})


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict[str, object]:
    value = orjson.loads(fixture_bytes(name))
    assert isinstance(value, dict)
    return value


class RecordingPublisher:
    """In-memory double: records what would be published; can be told to be unavailable."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes, Sequence[tuple[str, bytes]]]] = []
        self.available = True

    @property
    def ready(self) -> bool:
        return self.available

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers, timeout: float
    ) -> Published:
        if not self.available:
            raise PublishUnavailable("double told to be unavailable")
        self.records.append((topic, key, value, headers))
        return Published(topic, 0, len(self.records) - 1)
