"""Customer PII in ``raw`` payloads: encrypted, redacted or passed through (``privacy.mode``).

Platform modules declare *where* PII sits as dotted paths; this module decides *what* happens to
it. Path syntax: keys separated by dots; ``*`` matches every key of an object or every element of
a list; a decimal segment also indexes a list. Paths that are absent are skipped. A path may also
be given pre-split as a tuple of segments, for keys that themselves contain dots.

Encrypted values are ``enc:v1:<key id>:<base64url(nonce ‖ ciphertext)>`` (AES-GCM, 12-byte random
nonce, the ``enc:v1:<key id>`` prefix bound as associated data). The plaintext is the JSON
encoding (orjson) of the value, *also for strings*, so that :meth:`Privacy.decrypt` restores the
exact type: ``"123"`` and ``123`` stay distinguishable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.errors import BridgeError, ConfigError, InvalidPayload
from bridge.settings import PrivacyConfig

TOKEN_PREFIX = "enc:v1:"  # noqa: S105 - the ciphertext format's prefix, not a secret
REDACTED = "[redacted]"
NONCE_BYTES = 12

Path = tuple[str, ...]
PiiPath = str | Path


class DecryptionError(BridgeError):
    """A token cannot be decrypted: malformed, unknown key id, or tampered with."""


def key_id(secret: bytes) -> str:
    """Short alphanumeric id of a key: the first 8 hex characters of its SHA-256."""
    return hashlib.sha256(secret).hexdigest()[:8]


@lru_cache(maxsize=1024)
def _split(path: str) -> Path:
    segments = tuple(path.split("."))
    if not path or any(not s for s in segments):
        raise ValueError(f"invalid PII path {path!r}")
    return segments


def compile_path(path: PiiPath) -> Path:
    """``"data.order.email"`` → ``("data", "order", "email")``; tuples are taken as they are."""
    return path if isinstance(path, tuple) else _split(path)


_CONTAINERS = (str, list, dict)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, _CONTAINERS) and not value)


def transform_paths(payload: Any, paths: Sequence[PiiPath], fn: Callable[[Any], Any]) -> Any:
    """A copy of ``payload`` with ``fn`` applied to the value at every path.

    Copy-on-write: containers on a path where a value changed are copied, everything else is
    shared with the input, which is never mutated. A value is transformed at most once per path.
    Paths that no value can match twice (the usual case) are applied in one walk over a trie of
    them, each container copied at most once; overlapping ones are applied one after another.
    """
    trie = _compile(tuple(paths))
    if trie is None:
        result = payload
        for path in paths:
            result = _apply(result, compile_path(path), fn)
        return result
    return _walk(payload, trie, fn)


# A trie of paths: segment → the rest (``None``: the path ends here, apply ``fn``).
_Trie = dict[str, "_Trie | None"]


@lru_cache(maxsize=256)
def _compile(paths: tuple[PiiPath, ...]) -> _Trie | None:
    """The trie of ``paths``, or None when two of them can reach the same value (or one the
    other's ancestor): then the order they are applied in matters."""
    split = [compile_path(p) for p in paths]
    for i, a in enumerate(split):
        for b in split[i + 1 :]:
            if all(_may_meet(x, y) for x, y in zip(a, b, strict=False)):
                return None
    root: _Trie = {}
    for segments in split:
        node = root
        for segment in segments[:-1]:
            child = node.setdefault(segment, {})
            if child is None:  # cannot happen: no path ends above another (checked above)
                return None
            node = child
        node[segments[-1]] = None
    return root


def _may_meet(x: str, y: str) -> bool:
    """Whether two segments can select the same key or index ("0" and "00" index alike)."""
    return x == y or "*" in (x, y) or (x.isdecimal() and y.isdecimal() and int(x) == int(y))


def _matches(node: Any, trie: _Trie) -> list[tuple[Any, list[_Trie | None]]]:
    """(key or index, the sub-tries to apply there, in order) for a container node."""
    star = [trie["*"]] if "*" in trie else []
    literal = [(k, sub) for k, sub in trie.items() if k != "*"]
    if isinstance(node, dict):
        if star:
            return [(k, [*star, *([trie[k]] if k in trie and k != "*" else [])]) for k in node]
        return [(k, [sub]) for k, sub in literal if k in node]
    if star:
        extra: dict[int, list[_Trie | None]] = {}
        for k, sub in literal:
            if k.isdecimal() and int(k) < len(node):
                extra.setdefault(int(k), []).append(sub)
        return [(i, [*star, *extra.get(i, [])]) for i in range(len(node))]
    return [(int(k), [sub]) for k, sub in literal if k.isdecimal() and int(k) < len(node)]


def _walk(node: Any, trie: _Trie, fn: Callable[[Any], Any]) -> Any:
    if not isinstance(node, dict | list):
        return node
    copy: Any = None
    for key, subs in _matches(node, trie):
        old = new = node[key]
        for sub in subs:
            new = fn(new) if sub is None else _walk(new, sub, fn)
        if new is not old:
            if copy is None:
                copy = dict(node) if isinstance(node, dict) else list(node)
            copy[key] = new
    return node if copy is None else copy


def _apply(node: Any, segments: Path, fn: Callable[[Any], Any]) -> Any:
    if not segments:
        return fn(node)
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else ([head] if head in node else [])
        if not keys:
            return node
        copy = dict(node)
        for key in keys:
            copy[key] = _apply(node[key], rest, fn)
        return copy
    if isinstance(node, list):
        if head == "*":
            indexes = range(len(node))
        elif head.isdecimal() and int(head) < len(node):
            indexes = range(int(head), int(head) + 1)
        else:
            return node
        items = list(node)
        for i in indexes:
            items[i] = _apply(node[i], rest, fn)
        return items
    return node


class Privacy:
    """Applies ``privacy.mode`` to the PII paths of a payload; decrypts with any known key."""

    def __init__(self, cfg: PrivacyConfig) -> None:
        self.mode = cfg.mode
        self._ciphers: dict[str, AESGCM] = {}
        for kid, secret in cfg.keys.items():
            if len(secret) not in (16, 24, 32):
                raise ConfigError("privacy.key", f"key {kid!r} must be 16, 24 or 32 bytes")
            self._ciphers[kid] = AESGCM(secret)
        self._active = cfg.active_key_id
        if self.mode == "encrypt" and (self._active is None or self._active not in self._ciphers):
            raise ConfigError(
                "privacy.key", "mode 'encrypt' needs a key (e.g. key = 'env:BRIDGE_PII_KEY')"
            )

    # -- protecting ---------------------------------------------------------------------------

    def protect(self, payload: Any, pii_paths: Sequence[PiiPath]) -> Any:
        """A new structure with every value at a PII path encrypted/redacted; input untouched.

        ``None`` and empty strings, lists and objects stay as they are in every mode: there is
        nothing to hide, and "no e-mail given" remains visible.
        """
        if self.mode == "passthrough" or not pii_paths:
            return payload
        fn = self.encrypt if self.mode == "encrypt" else _redact
        return transform_paths(payload, pii_paths, lambda v: v if _is_empty(v) else fn(v))

    def encrypt(self, value: Any) -> str:
        """``enc:v1:<kid>:<b64url>`` of the JSON encoding of ``value`` under the active key."""
        kid = self._active
        if kid is None:
            raise ConfigError("privacy.key", "no active key to encrypt with")
        header = f"{TOKEN_PREFIX}{kid}"
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, _dumps(value), header.encode())
        return f"{header}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    # -- revealing ----------------------------------------------------------------------------

    def decrypt(self, token: str) -> Any:
        """The original value of a token produced by :meth:`encrypt` with any configured key."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            raise DecryptionError("not an enc:v1 token")
        kid, sep, data = token[len(TOKEN_PREFIX) :].partition(":")
        if not sep or not kid:
            raise DecryptionError("malformed enc:v1 token: expected enc:v1:<key id>:<data>")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DecryptionError(f"unknown key id {kid!r}: add the key to privacy.old_keys")
        try:
            blob = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            raise DecryptionError("malformed enc:v1 token: data is not base64url") from None
        if len(blob) < NONCE_BYTES + 16:
            raise DecryptionError("malformed enc:v1 token: too short")
        header = f"{TOKEN_PREFIX}{kid}".encode()
        try:
            plain = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], header)
        except InvalidTag:
            raise DecryptionError(f"token does not authenticate under key {kid!r}") from None
        return orjson.loads(plain)

    def reveal(self, payload: Any) -> Any:
        """A copy of ``payload`` with every ``enc:v1`` token string replaced by its value."""
        if isinstance(payload, str) and payload.startswith(TOKEN_PREFIX):
            return self.reveal(self.decrypt(payload))
        if isinstance(payload, Mapping):
            return {k: self.reveal(v) for k, v in payload.items()}
        if isinstance(payload, list):
            return [self.reveal(v) for v in payload]
        return payload


def _redact(_value: Any) -> str:
    return REDACTED


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError: ints over 64 bits, non-JSON types
        raise InvalidPayload(f"cannot encrypt a value that is not JSON: {exc}") from None
