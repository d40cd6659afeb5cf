"""Configuration parsing and validation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bridge.config import load_config, parse_config
from bridge.errors import ConfigError
from bridge.settings import IngressConfig, KafkaConfig, OutboxConfig, RelayConfig, ShopConfig
from bridge.targets import StockTarget

KEY = base64.b64encode(bytes(range(32))).decode()
ENV = {"CB_TOKEN": "tok", "CB_SECRET": "s3cret", "BENTO_TOKEN": "bt", "BRIDGE_PII_KEY": KEY}

EXAMPLE = """
[kafka]
bootstrap_servers = "127.0.0.1:9092"
topic_prefix = "commerce"

[ingress]
max_body_bytes = 2097152

[outbox]
dsn = "sqlite:///var/bridge/outbox.db"

[privacy]
mode = "encrypt"
key = "env:BRIDGE_PII_KEY"

[[shops]]
id = "cb-taipei"
platform = "cyberbiz"
api_base = "https://app-store-api.cyberbiz.io"
api_token = "env:CB_TOKEN"
webhook_secrets = ["env:CB_SECRET", "older-secret"]
rate_limit = 5.0

[[shops]]
id = "bento-bkk"
platform = "bentoweb"
api_base = "https://queue.bentoweb.com/api"
webhook_secrets = ["env:BENTO_TOKEN"]

[[sync_groups]]
id = "tee-black-m"
members = [
  { shop = "cb-taipei", product = "1001", variant = "5001" },
  { shop = "bento-bkk", variant = "753758" },
]
"""


def errors_for(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, ENV if env is None else env)
    return info.value.key


def test_architecture_example_parses() -> None:
    """The example of ARCHITECTURE §7 is a valid configuration, env secrets resolved."""
    config = parse_config(EXAMPLE, ENV)
    shop = config.shops["cb-taipei"]
    assert ("s3cret", "older-secret") == shop.webhook_secrets
    assert "tok" == shop.api_token
    assert "https://app-store-api.cyberbiz.io" == shop.api_base
    assert 5.0 == shop.rate_limit
    assert "encrypt" == config.privacy.mode
    assert config.privacy.active_key_id in config.privacy.keys
    member = config.sync_groups[0].members[0]
    assert ("cb-taipei", StockTarget("variant", "5001", "1001")) == (member.shop, member.target)


def test_secrets_do_not_appear_in_repr() -> None:
    """A config printed by accident does not show webhook secrets or API tokens."""
    config = parse_config(EXAMPLE, ENV)
    text = repr(config)
    assert "s3cret" not in text
    assert "tok'" not in text


def test_env_overrides_bootstrap_servers() -> None:
    """BRIDGE_KAFKA_BOOTSTRAP_SERVERS wins over the file."""
    config = parse_config(EXAMPLE, {**ENV, "BRIDGE_KAFKA_BOOTSTRAP_SERVERS": "k:1"})
    assert "k:1" == config.kafka.bootstrap_servers


@pytest.mark.parametrize(
    ("replace", "by", "key"),
    [
        ('platform = "bentoweb"', 'platform = "shopify"', "shops[1].platform"),
        ("rate_limit = 5.0", "rate_limit = -1", "shops[0].rate_limit"),
        ("rate_limit = 5.0", 'rate_limit = "fast"', "shops[0].rate_limit"),
        ("rate_limit = 5.0", "rate_limt = 5.0", "shops[0].rate_limt"),
        ('mode = "encrypt"', 'mode = "hide"', "privacy.mode"),
        ('dsn = "sqlite:///var/bridge/outbox.db"', 'dsn = "mysql://x"', "outbox.dsn"),
        ("max_body_bytes = 2097152", "max_body_bytes = 0", "ingress.max_body_bytes"),
        ('outbox.db"\n', 'outbox.db"\nretention = 60\n', "outbox.retention"),
        ('outbox.db"\n', 'outbox.db"\nretention = "7d"\n', "outbox.retention"),
        ('outbox.db"\n', 'outbox.db"\nretention = -1\n', "outbox.retention"),
        ('{ shop = "bento-bkk", variant = "753758" }', '{ shop = "nope", variant = "1" }',
         "sync_groups[0].members[1].shop"),
        ('id = "bento-bkk"', 'id = "cb-taipei"', "shops[1].id"),
    ],
)  # fmt: skip
def test_bad_values_name_the_key(replace: str, by: str, key: str) -> None:
    """Each invalid setting is reported with its dotted key."""
    assert replace in EXAMPLE
    assert key == errors_for(EXAMPLE.replace(replace, by, 1))


def test_missing_env_secret_names_key_and_variable() -> None:
    """A secret pointing at an unset variable names both the key and the variable."""
    env = {k: v for k, v in ENV.items() if k != "CB_SECRET"}
    with pytest.raises(ConfigError) as info:
        parse_config(EXAMPLE, env)
    assert "shops[0].webhook_secrets[0]" == info.value.key
    assert "CB_SECRET" in info.value.reason


def test_encrypt_needs_a_valid_key() -> None:
    """privacy.key must decode to an AES key."""
    assert "privacy.key" == errors_for(EXAMPLE, {**ENV, "BRIDGE_PII_KEY": "not-a-key!"})
    assert "privacy.key" == errors_for(EXAMPLE.replace('key = "env:BRIDGE_PII_KEY"', ""))


def test_invalid_toml_is_reported() -> None:
    """Broken TOML gives a ConfigError, not a traceback."""
    assert "<toml>" == errors_for("[kafka\nbootstrap_servers=1")


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A config path that does not exist names --config."""
    with pytest.raises(ConfigError) as info:
        load_config(f"{tmp_path}/absent.toml", {})
    assert "--config" == info.value.key


def test_sync_member_needs_exactly_one_target() -> None:
    """A member with neither variant nor cyberbiz_group is refused."""
    text = EXAMPLE.replace('{ shop = "bento-bkk", variant = "753758" }', '{ shop = "bento-bkk" }')
    assert "sync_groups[0].members[1]" == errors_for(text)


def test_example_file_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """bridge.example.toml passes `commerce-bridge config check` once its env secrets exist."""
    from bridge.cli import main

    root = Path(__file__).parents[1]
    text = (root / "bridge.example.toml").read_text()
    names = {part.split('"')[0] for part in text.split('"env:')[1:]}
    env = {name: KEY if name == "BRIDGE_PII_KEY" else "x" for name in names}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        assert 0 == main(["config", "check", "--config", str(root / "bridge.example.toml")])
    assert "ok — 2 shop(s), 1 sync group(s)" in capsys.readouterr().out


def test_config_check_names_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`commerce-bridge config check` on a broken file exits 2 and names the key."""
    from bridge.cli import main

    path = tmp_path / "bridge.toml"
    path.write_text(EXAMPLE.replace("rate_limit = 5.0", "rate_limit = 0"))
    with pytest.MonkeyPatch.context() as mp:
        for name, value in ENV.items():
            mp.setenv(name, value)
        assert 2 == main(["config", "check", "--config", str(path)])
    assert "shops[0].rate_limit: must be >= 0.01, got 0" in capsys.readouterr().err


def test_sync_group_field_of_another_platform_names_its_owner() -> None:
    """A BentoWeb member with a cyberbiz_group is refused: only Cyberbiz shops have sync groups."""
    text = EXAMPLE.replace('{ shop = "bento-bkk", variant = "753758" }',
                           '{ shop = "bento-bkk", cyberbiz_group = "77" }')  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config(text, ENV)
    assert ("sync_groups[0].members[1].cyberbiz_group", "only Cyberbiz shops have sync groups") == (
        info.value.key, info.value.reason,
    )  # fmt: skip


def test_cyberbiz_sync_group_member_is_a_group_target() -> None:
    """A Cyberbiz member naming cyberbiz_group becomes a target of kind group (key group:77)."""
    text = EXAMPLE.replace('{ shop = "cb-taipei", product = "1001", variant = "5001" }',
                           '{ shop = "cb-taipei", cyberbiz_group = 77 }')  # fmt: skip
    member = parse_config(text, ENV).sync_groups[0].members[0]
    assert (StockTarget("group", "77"), "group:77") == (member.target, member.target.key)


def test_same_target_twice_is_refused() -> None:
    """One shop's variant may belong to one sync group only (keyed like the outbox target)."""
    text = (
        EXAMPLE
        + """
[[sync_groups]]
id = "again"
members = [
  { shop = "cb-taipei", product = "1001", variant = "5001" },
  { shop = "bento-bkk", variant = "1" },
]
"""
    )
    assert "sync_groups[1].members[0]" == errors_for(text)


@pytest.mark.parametrize("present", ["client_id", "client_secret"])
def test_bentoweb_oauth_credentials_come_in_pairs(present: str) -> None:
    """BentoWeb's own rule: client_id without client_secret (or the reverse) names the missing one."""
    missing = {"client_id": "client_secret", "client_secret": "client_id"}[present]
    text = EXAMPLE.replace('webhook_secrets = ["env:BENTO_TOKEN"]',
                           f'webhook_secrets = ["env:BENTO_TOKEN"]\n{present} = "x"')  # fmt: skip
    assert f"shops[1].{missing}" == errors_for(text)


def test_unknown_platform_lists_the_registered_ones() -> None:
    """The platform list in the message comes from the registry."""
    with pytest.raises(ConfigError) as info:
        parse_config(EXAMPLE.replace('platform = "bentoweb"', 'platform = "shopify"'), ENV)
    assert "must be one of cyberbiz, bentoweb, standard" == info.value.reason


def test_defaults_are_the_dataclass_defaults() -> None:
    """A file that sets nothing reads as the dataclasses' own defaults (stated once)."""
    config = parse_config('[privacy]\nmode = "redact"\n', {})
    assert (KafkaConfig(), IngressConfig(), OutboxConfig(), RelayConfig()) == (
        config.kafka, config.ingress, config.outbox, config.relay,
    )  # fmt: skip


def test_shop_defaults_are_the_dataclass_defaults() -> None:
    """A shop that sets only id, platform and a secret gets ShopConfig's defaults."""
    text = '[privacy]\nmode = "redact"\n[[shops]]\nid = "s"\nplatform = "standard"\nwebhook_secrets = ["x"]\n'
    expected = ShopConfig(id="s", platform="standard", webhook_secrets=("x",))
    assert expected == parse_config(text, {}).shops["s"]


def test_outbox_retention_defaults_to_a_week_and_zero_keeps_rows() -> None:
    """outbox.retention is seconds (default 7 days); 0 turns the background purge off."""
    assert 7 * 86_400.0 == parse_config(EXAMPLE, ENV).outbox.retention
    text = EXAMPLE.replace('outbox.db"\n', 'outbox.db"\nretention = 0\n', 1)
    assert 0.0 == parse_config(text, ENV).outbox.retention
