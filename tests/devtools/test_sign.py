"""commerce-bridge sign: requests signed for each platform verify at the ingress; the curl it prints works."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from bridge import clitools
from bridge.config import ShopConfig
from bridge.devtools.sign import curl_command, guess_event, register, sign_request
from bridge.errors import ConfigError
from bridge.platforms import get_platform
from bridge.platforms.base import Delivery
from tests.platforms.support import FIXTURES, NOW, delivery, fixture_bytes, shop

CASES = [
    ("cyberbiz", "cyberbiz/order.json", "orders/paid"),
    ("cyberbiz", "cyberbiz/variant.json", "variants/update"),
    ("bentoweb", "bentoweb/order.json", "order.new"),
    ("bentoweb", "bentoweb/variant.json", "variant.update"),
    ("standard", "standard/order_paid.json", "order.paid"),
    ("standard", "standard/variant_updated.json", "variant.updated"),
]
SECRETS = {
    "cyberbiz": ("cb-app-secret", "cb-old-secret"),
    "bentoweb": ("bento-token-1",),
    "standard": ("whsec_c2lnbmluZy1rZXktZm9yLXRlc3Rz",),
}


def _shop(platform: str) -> ShopConfig:
    return shop(platform, webhook_secrets=SECRETS[platform])


def _as_delivery(config: ShopConfig, body: bytes, suffix: str, headers: dict[str, str]) -> Delivery:
    path_event = unquote(suffix.lstrip("/")) or None
    return delivery(config, body, headers=headers, path_event=path_event)


@pytest.mark.parametrize(("platform", "name", "event"), CASES)
def test_signed_request_verifies_and_names_the_event(platform: str, name: str, event: str) -> None:
    """sign_request is the inverse of verify: the ingress accepts it and reads the same event."""
    config = _shop(platform)
    body = fixture_bytes(name)
    suffix, headers = sign_request(config, body, event, NOW)
    incoming = _as_delivery(config, body, suffix, headers)
    webhook = get_platform(platform)
    webhook.verify(incoming, NOW)
    assert event == webhook.event_name(incoming)


def test_cyberbiz_headers() -> None:
    """Cyberbiz requests carry the event, a domain and a lowercase hex HMAC; no path suffix."""
    suffix, headers = sign_request(_shop("cyberbiz"), b"{}", "orders/create", NOW)
    signature = headers["X-Cyberbiz-Hmac-Sha256"]
    expected = ("", "orders/create", "cyberbiz-shop.cyberbiz.co", 64, signature.lower())
    actual = (
        suffix,
        headers["X-Cyberbiz-Event"],
        headers["X-Cyberbiz-Domain"],
        len(signature),
        signature,
    )
    assert expected == actual


def test_bentoweb_event_goes_in_the_path() -> None:
    """BentoWeb requests put the event in the URL and the token in a header."""
    suffix, headers = sign_request(_shop("bentoweb"), b"{}", "variant.update", NOW)
    assert ("/variant.update", "bento-token-1") == (suffix, headers["X-Webhook-Token"])


def test_standard_message_ids_are_unique() -> None:
    """Each signed Standard Webhooks request gets a fresh message id."""
    body = fixture_bytes("standard/order_paid.json")
    ids = {sign_request(_shop("standard"), body, "", NOW)[1]["webhook-id"] for _ in range(3)}
    assert 3 == len(ids)


def test_standard_event_in_path_only_without_body_type() -> None:
    """The body's type names the event; the path carries it only when the body has none."""
    config = _shop("standard")
    typed = sign_request(config, fixture_bytes("standard/order_paid.json"), "order.paid", NOW)[0]
    untyped = sign_request(config, b'{"data": {"id": 1}}', "variant.updated", NOW)[0]
    assert ("", "/variant.updated") == (typed, untyped)


def test_standard_signature_expires() -> None:
    """A signature made six minutes ago no longer verifies."""
    config = _shop("standard")
    body = fixture_bytes("standard/order_paid.json")
    suffix, headers = sign_request(config, body, "", NOW - 360)
    with pytest.raises(Exception, match="too old"):
        get_platform("standard").verify(_as_delivery(config, body, suffix, headers), NOW)


def test_event_required_for_cyberbiz() -> None:
    """Cyberbiz cannot be signed without an event name."""
    with pytest.raises(ConfigError, match="--event"):
        sign_request(_shop("cyberbiz"), b"{}", "", NOW)


def test_shop_without_secret_cannot_sign() -> None:
    """A shop with no webhook secret is a configuration error."""
    with pytest.raises(ConfigError, match="webhook_secrets"):
        sign_request(shop("bentoweb", webhook_secrets=()), b"{}", "order.new", NOW)


@pytest.mark.parametrize(
    ("platform", "name", "expected"),
    [
        ("bentoweb", "bentoweb/order.json", "order.new"),
        ("bentoweb", "bentoweb/variant.json", "variant.update"),
        ("bentoweb", "bentoweb/product.json", "product.update"),
        ("cyberbiz", "cyberbiz/order.json", "orders/create"),
        ("cyberbiz", "cyberbiz/variant.json", "variants/update"),
        ("cyberbiz", "cyberbiz/product.json", "products/update"),
        ("standard", "standard/order_paid.json", "order.paid"),
        ("cyberbiz", "cyberbiz/customer.json", None),
    ],
)
def test_guess_event_from_sample_bodies(platform: str, name: str, expected: str | None) -> None:
    """Without --event, the seed bodies get a plausible event (or none when unclear)."""
    assert expected == guess_event(platform, fixture_bytes(name))


@pytest.mark.parametrize(("platform", "name", "event"), CASES)
def test_curl_command_is_a_request_the_ingress_accepts(
    platform: str, name: str, event: str
) -> None:
    """Parsing the printed curl gives a URL and headers that verify for the file's bytes."""
    config = _shop(platform)
    path = FIXTURES / name
    argv = shlex.split(curl_command("http://127.0.0.1:8080", config, path, event, now=NOW))
    url = urlsplit(argv[argv.index("-X") + 2])
    headers = dict(argv[i + 1].split(": ", 1) for i, a in enumerate(argv) if a == "-H")
    prefix = f"/webhooks/{config.id}"
    expected = (["curl", "-sS", "-X", "POST"], True, f"@{path}")
    assert expected == (argv[:4], url.path.startswith(prefix), argv[-1])
    incoming = _as_delivery(config, path.read_bytes(), url.path[len(prefix) :], headers)
    get_platform(platform).verify(incoming, NOW)
    assert event == get_platform(platform).event_name(incoming)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commerce-bridge")
    register(parser.add_subparsers(dest="command"))
    return parser


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(
        '[privacy]\nmode = "redact"\n\n'
        '[[shops]]\nid = "bento-bkk"\nplatform = "bentoweb"\nwebhook_secrets = ["tok"]\n',
        encoding="utf-8",
    )
    return path


def test_cli_prints_curl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """commerce-bridge sign --shop S FILE prints a curl for the guessed event and exits 0."""
    body = FIXTURES / "bentoweb/variant.json"
    args = _parser().parse_args(
        ["sign", "--shop", "bento-bkk", "--config", str(_config(tmp_path)), str(body)]
    )
    code = args.func(args)
    out = capsys.readouterr().out
    expected = (0, True, True)
    actual = (
        code,
        "http://127.0.0.1:8080/webhooks/bento-bkk/variant.update" in out,
        "X-Webhook-Token: tok" in out,
    )
    assert expected == actual


def test_cli_unknown_shop(tmp_path: Path) -> None:
    """An unknown --shop is a configuration error naming the configured shops."""
    args = _parser().parse_args(
        ["sign", "--shop", "nope", "--config", str(_config(tmp_path)), "x.json"]
    )
    with pytest.raises(ConfigError, match="bento-bkk"):
        args.func(args)


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing FILE exits 2 with a message on stderr."""
    args = _parser().parse_args(
        ["sign", "--shop", "bento-bkk", "--config", str(_config(tmp_path)), str(tmp_path / "x")]
    )
    code = clitools.invoke(args.func, args)
    assert (2, True) == (code, "cannot read" in capsys.readouterr().err)
