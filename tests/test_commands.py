"""Command parsing, and agreement between the parser and schemas/command.v1.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from bridge.commands import InvalidCommand, parse_command, target_of, to_write
from bridge.errors import PlatformError
from bridge.targets import StockTarget

SCHEMA = Draft202012Validator(
    orjson.loads((Path(__file__).parents[1] / "schemas" / "command.v1.json").read_bytes())
)
SHOPS = {"cb-taipei", "bento-bkk"}
VALID: dict[str, Any] = {
    "id": "cmd-1",
    "shop": "cb-taipei",
    "kind": "set_stock",
    "target": {"variant": "5001", "product": "1001"},
    "payload": {"quantity": 17},
    "idempotency_key": "sync:tee-black-m:42",
}


def variant(**changes: Any) -> dict[str, Any]:
    return {**VALID, **changes}


INVALID = [
    ({"id": "x"}, "shop is required"),
    (variant(shop="nope"), "unknown shop 'nope'"),
    (variant(kind="delete_everything"), "kind must be one of set_stock"),
    (variant(target={"product": "1"}), "target needs exactly one of variant or cyberbiz_group"),
    (variant(target={"variant": "1", "cyberbiz_group": "2"}), "target needs exactly one of variant or cyberbiz_group"),
    (variant(target={"variant": "../admin"}), "target.variant must be a non-empty id without '/', '?' or '#'"),
    (variant(target={"variant": 5001}), "target.variant must be a string"),
    (variant(payload={"quantity": -1}), "payload.quantity must be between 0 and 2147483647"),
    (variant(payload={"quantity": 1.5}), "payload.quantity must be an integer"),
    (variant(payload={"quantity": True}), "payload.quantity must be an integer"),
    (variant(payload={"quantity": 1, "x": 2}), 'payload must be {"quantity": <integer>}'),
    (variant(idempotency_key=""), "idempotency_key must be 1 to 200 printable ASCII characters"),
    (variant(idempotency_key="k\x00"), "idempotency_key must be 1 to 200 printable ASCII characters"),
    (variant(idempotency_key="k\n1"), "idempotency_key must be 1 to 200 printable ASCII characters"),
    (variant(idempotency_key="clé"), "idempotency_key must be 1 to 200 printable ASCII characters"),
    (variant(idempotency_key="k" * 201), "idempotency_key must be 1 to 200 printable ASCII characters"),
    (variant(idempotency_key=7), "idempotency_key must be 1 to 200 printable ASCII characters"),
    (variant(extra=1), "unknown field 'extra'"),
]  # fmt: skip


def test_valid_command_becomes_an_outbox_write() -> None:
    """A valid set_stock command maps to one outbox write keyed by its target."""
    command = parse_command(orjson.dumps(VALID), SHOPS)
    write = to_write(command)
    assert ("cb-taipei", "set_stock", "variant:5001") == (write.shop, write.kind, write.target)
    assert "sync:tee-black-m:42" == write.idempotency_key
    assert StockTarget("variant", "5001", "1001") == target_of(write.payload)
    assert 17 == write.payload["quantity"]
    assert [] == list(SCHEMA.iter_errors(VALID))


def test_group_target() -> None:
    """A Cyberbiz inventory sync group is its own target."""
    doc = variant(target={"cyberbiz_group": "77"})
    write = to_write(parse_command(orjson.dumps(doc), SHOPS))
    assert "group:77" == write.target
    assert StockTarget("group", "77") == target_of(write.payload)
    assert [] == list(SCHEMA.iter_errors(doc))


@pytest.mark.parametrize(("doc", "reason"), INVALID)
def test_invalid_commands_name_the_reason(doc: dict[str, Any], reason: str) -> None:
    """Each invalid command is refused with a precise reason, and the schema refuses it too."""
    with pytest.raises(InvalidCommand) as info:
        parse_command(orjson.dumps(doc), SHOPS)
    assert reason == info.value.reason
    if "unknown shop" not in reason:  # shop ids are configuration, not schema
        assert list(SCHEMA.iter_errors(doc)) != []


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b"\xff", b"null"])
def test_non_objects_are_invalid(raw: bytes) -> None:
    """Bytes that are not a JSON object are refused, not crashed on."""
    with pytest.raises(InvalidCommand):
        parse_command(raw, SHOPS)


def test_keys_of_200_printable_ascii_characters_are_valid() -> None:
    """The longest valid idempotency key (200 printable ASCII characters, spaces included) passes."""
    key = ("a b~" * 50)[:200]
    command = parse_command(orjson.dumps(variant(idempotency_key=key)), SHOPS)
    assert key == command.idempotency_key
    assert [] == list(SCHEMA.iter_errors(variant(idempotency_key=key)))


@pytest.mark.parametrize(
    "payload",
    [{"quantity": 1}, {"quantity": 1, "variant": "1", "cyberbiz_group": "2"}, {"variant": 5}],
)
def test_outbox_payload_without_one_target_is_final(payload: dict[str, object]) -> None:
    """A stored row without exactly one string target can never be sent: not retryable."""
    with pytest.raises(PlatformError) as info:
        target_of(payload)
    assert False is info.value.retryable
