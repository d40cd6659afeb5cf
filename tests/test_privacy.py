"""Privacy: PII paths encrypted, redacted or passed through; tokens decrypt with any known key."""

from __future__ import annotations

import base64
import copy
import os
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import PrivacyConfig, parse_config
from bridge.errors import ConfigError
from bridge.privacy import REDACTED, DecryptionError, Privacy, key_id, transform_paths
from tests.platforms.support import KEY, KID, json_values, privacy

TOKEN = re.compile(r"enc:v1:k1:[A-Za-z0-9_-]+")
OTHER_KEY = bytes(range(100, 132))

ORDER: dict[str, Any] = {
    "id": 1,
    "email": "a@example.com",
    "customer": {"name": "Ann", "phone": "0912"},
    "items": [{"name": "Mug", "email": "x@example.com"}, {"name": "Cap"}],
    "empty": "",
    "nothing": None,
}


def test_key_id_is_first_eight_hex_chars_of_sha256() -> None:
    """key_id is short, alphanumeric and stable for a key."""
    expected = "630dcd29"
    assert expected == key_id(KEY)
    assert key_id(KEY).isalnum()


def test_encrypt_produces_versioned_token_with_key_id() -> None:
    """Encrypted values look like enc:v1:<kid>:<base64url>."""
    protected = privacy().protect(ORDER, ["email"])
    assert TOKEN.fullmatch(protected["email"]) is not None


def test_decrypt_restores_string() -> None:
    """A string decrypts to the same string."""
    p = privacy()
    assert "a@example.com" == p.decrypt(p.protect(ORDER, ["email"])["email"])


def test_decrypt_restores_object_and_types() -> None:
    """Non-string values keep their JSON type through encryption."""
    p = privacy()
    token = p.protect(ORDER, ["customer"])["customer"]
    assert {"name": "Ann", "phone": "0912"} == p.decrypt(token)


def test_string_and_number_stay_distinguishable() -> None:
    """ "123" and 123 decrypt to their own types."""
    p = privacy()
    protected = p.protect({"a": "123", "b": 123}, ["a", "b"])
    assert ("123", 123) == (p.decrypt(protected["a"]), p.decrypt(protected["b"]))


def test_protect_never_mutates_input() -> None:
    """The input payload is unchanged after protect."""
    before = copy.deepcopy(ORDER)
    privacy().protect(ORDER, ["email", "customer.name", "items.*.email"])
    assert before == ORDER


def test_wildcard_matches_every_list_element() -> None:
    """items.*.email encrypts the field in every element that has it."""
    p = privacy()
    protected = p.protect(ORDER, ["items.*.email"])
    assert "x@example.com" == p.decrypt(protected["items"][0]["email"])
    assert {"name": "Cap"} == protected["items"][1]


def test_wildcard_matches_every_object_key() -> None:
    """customer.* encrypts every value of the object but keeps its keys."""
    p = privacy()
    protected = p.protect(ORDER, ["customer.*"])
    assert ["name", "phone"] == sorted(protected["customer"])
    assert "Ann" == p.decrypt(protected["customer"]["name"])


def test_decimal_segment_indexes_a_list() -> None:
    """items.0.email addresses the first element only."""
    p = privacy("redact")
    protected = p.protect(ORDER, ["items.0.name"])
    assert [REDACTED, "Cap"] == [i["name"] for i in protected["items"]]


def test_tuple_path_addresses_keys_with_dots() -> None:
    """A pre-split path reaches a key that contains a dot."""
    protected = privacy("redact").protect({"a.b": "secret"}, [("a.b",)])
    assert {"a.b": REDACTED} == protected


def test_absent_path_is_fine() -> None:
    """Paths that do not exist leave the payload as it was."""
    assert ORDER == privacy().protect(ORDER, ["nope", "customer.nope.deeper", "items.*.x.y"])


def test_path_through_a_scalar_is_ignored() -> None:
    """A path that runs into a string stops there without error."""
    assert ORDER == privacy().protect(ORDER, ["email.local"])


@pytest.mark.parametrize("mode", ["encrypt", "redact"])
def test_null_and_empty_stay_as_they_are(mode: str) -> None:
    """None and "" have nothing to hide and stay readable."""
    protected = privacy(mode).protect(ORDER, ["empty", "nothing"])
    assert ("", None) == (protected["empty"], protected["nothing"])


def test_redact_replaces_values() -> None:
    """Redact mode puts [redacted] in place of strings and objects."""
    protected = privacy("redact").protect(ORDER, ["email", "customer"])
    assert (REDACTED, REDACTED) == (protected["email"], protected["customer"])


def test_passthrough_keeps_values() -> None:
    """Passthrough mode changes nothing."""
    assert ORDER == privacy("passthrough").protect(ORDER, ["email", "customer"])


def test_each_encryption_uses_a_fresh_nonce() -> None:
    """Encrypting the same value twice gives different tokens."""
    p = privacy()
    assert p.encrypt("same") != p.encrypt("same")


def test_decrypt_with_rotated_key() -> None:
    """A token from the old key decrypts once that key is kept as an old key."""
    old = Privacy(PrivacyConfig(mode="encrypt", keys={"old": OTHER_KEY}, active_key_id="old"))
    token = old.encrypt({"email": "a@example.com"})
    rotated = Privacy(
        PrivacyConfig(mode="encrypt", keys={KID: KEY, "old": OTHER_KEY}, active_key_id=KID)
    )
    assert {"email": "a@example.com"} == rotated.decrypt(token)
    assert rotated.encrypt("x").startswith("enc:v1:k1:")


def test_decrypt_unknown_key_id_fails_clearly() -> None:
    """A token from a key we do not have names the key id."""
    old = Privacy(PrivacyConfig(mode="encrypt", keys={"old": OTHER_KEY}, active_key_id="old"))
    with pytest.raises(DecryptionError, match="unknown key id 'old'"):
        privacy().decrypt(old.encrypt("x"))


def test_decrypt_tampered_token_fails() -> None:
    """Flipping one ciphertext byte breaks authentication."""
    p = privacy()
    token = p.encrypt("a@example.com")
    head, data = token.rsplit(":", 1)
    blob = bytearray(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    blob[-1] ^= 1
    tampered = f"{head}:{base64.urlsafe_b64encode(bytes(blob)).decode().rstrip('=')}"
    with pytest.raises(DecryptionError, match="does not authenticate"):
        p.decrypt(tampered)


def test_relabelled_key_id_fails() -> None:
    """The key id is authenticated: moving a token under another id does not decrypt."""
    p = Privacy(PrivacyConfig(mode="encrypt", keys={KID: KEY, "k2": KEY}, active_key_id=KID))
    token = p.encrypt("x").replace("enc:v1:k1:", "enc:v1:k2:")
    with pytest.raises(DecryptionError):
        p.decrypt(token)


@pytest.mark.parametrize(
    "token", ["plain", "enc:v1:", "enc:v1:k1", "enc:v1:k1:%%%", "enc:v1:k1:AAAA", "enc:v2:k1:AA"]
)
def test_decrypt_malformed_token_fails(token: str) -> None:
    """Anything that is not a whole token raises DecryptionError."""
    with pytest.raises(DecryptionError):
        privacy().decrypt(token)


def test_encrypt_mode_without_key_is_a_config_error() -> None:
    """Encrypt mode refuses to start without a key instead of leaking PII."""
    with pytest.raises(ConfigError, match=r"privacy\.key"):
        Privacy(PrivacyConfig(mode="encrypt"))


def test_key_from_config_file_encrypts_and_decrypts() -> None:
    """A key loaded by bridge.config (id from key_id) drives Privacy end to end."""
    text = '[privacy]\nmode = "encrypt"\nkey = "env:PII"\n'
    config = parse_config(text, {"PII": base64.b64encode(KEY).decode()})
    p = Privacy(config.privacy)
    token = p.encrypt("x")
    assert (f"enc:v1:{key_id(KEY)}:", "x") == (token[:16], p.decrypt(token))


def test_reveal_decrypts_every_token_in_a_structure() -> None:
    """reveal(protect(x)) gives x back."""
    p = privacy()
    assert ORDER == p.reveal(p.protect(ORDER, ["email", "customer", "items.*.email"]))


@given(json_values)
def test_decrypt_inverts_protect_for_any_json_value(value: Any) -> None:
    """decrypt(protect(x)) == x for every non-empty JSON value; empty ones stay as they are."""
    p = privacy()
    protected = p.protect({"pii": value}, ["pii"])["pii"]
    empty = value is None or value in ("", [], {})
    assert value == (protected if empty else p.decrypt(protected))


@given(json_values, st.sampled_from(["*", "*.*", "*.*.*", "a.*", "0"]))
def test_reveal_inverts_protect_for_any_structure(value: Any, path: str) -> None:
    """Wildcard paths over arbitrary JSON never fail and reveal restores the input."""
    p = privacy()
    before = copy.deepcopy(value)
    protected = p.protect(value, [path])
    assert (before, before) == (value, p.reveal(protected))


def _one_path_at_a_time(payload: Any, paths: list[str]) -> Any:
    """Reference: each path applied on its own, in order (the behaviour the trie walk keeps)."""
    result = payload
    for path in paths:
        result = _apply_one(result, path.split("."))
    return result


def _apply_one(node: Any, segments: list[str]) -> Any:
    if not segments:
        return _mark(node)
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
        return node if not keys else {**node, **{k: _apply_one(node[k], rest) for k in keys}}
    if isinstance(node, list):
        picked = range(len(node)) if head == "*" else [int(head)] if head.isdecimal() else []
        chosen = {i for i in picked if i < len(node)}
        if not chosen:
            return node
        return [_apply_one(v, rest) if i in chosen else v for i, v in enumerate(node)]
    return node


def _mark(value: Any) -> Any:
    return ["marked", value]


_SEGMENTS = st.sampled_from(["*", "a", "b", "0", "1", "00"])
_PATHS = st.lists(st.lists(_SEGMENTS, min_size=1, max_size=3).map(".".join), max_size=5)


@given(json_values, _PATHS)
def test_one_walk_over_many_paths_equals_one_path_at_a_time(value: Any, paths: list[str]) -> None:
    """Several paths in one call transform exactly what applying them one by one would."""
    before = copy.deepcopy(value)
    expected = _one_path_at_a_time(value, paths)
    assert (expected, before) == (transform_paths(value, paths, _mark), value)


def test_one_walk_copies_only_containers_that_changed() -> None:
    """A subtree no path changed is shared with the input, not copied."""
    payload: Any = {"data": {"order": {"email": "a@b.c", "items": [{"sku": "X"}]}}, "meta": {}}
    protected = privacy("redact").protect(payload, ["data.order.email", "data.order.phone"])
    assert (REDACTED, True, True) == (
        protected["data"]["order"]["email"],
        protected["meta"] is payload["meta"],
        protected["data"]["order"]["items"] is payload["data"]["order"]["items"],
    )


def test_nonces_never_repeat_within_a_process() -> None:
    """Consecutive encryptions use distinct nonces (a counter from a random start)."""
    p = privacy()
    nonces = {_nonce(p.encrypt("same")) for _ in range(1000)}
    assert 1000 == len(nonces)


def test_forked_child_does_not_repeat_the_parents_nonces() -> None:
    """After fork the child draws a new starting point instead of continuing the parent's."""
    p = privacy()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next nonce and leave at once
        os.write(write, _nonce(p.encrypt("x")))
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64)
    os.close(read)
    parent = {_nonce(p.encrypt("x")) for _ in range(3)}
    assert child not in parent


def _nonce(token: str) -> bytes:
    data = token.rsplit(":", 1)[1]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))[:12]
